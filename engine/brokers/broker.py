"""The Broker protocol: what every venue implements so the engine never knows which one it talks to.

A broker takes orders and cancels without waiting (a real venue sends them from its own task),
and reports what happens to them as VenueEvents in `events`, which the engine drains. It can list
the account for reconciliation, and it says what it supports and whether it is a paper venue:
paperdesk refuses, at connect, any venue that cannot prove it trades paper money.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from engine.model.instrument import Instrument
from engine.model.market import Bar, BookSnapshot, TradeTick
from engine.model.order import Order, OrderType, TimeInForce
from engine.model.venue_event import CancelAck, VenueEvent


class NotPaperVenue(Exception):
    """A venue that cannot prove it is paper or testnet: nothing is sent to it."""


@dataclass(frozen=True, slots=True)
class VenueCapabilities:
    """What a venue accepts. Lot, tick and min-notional filters live on each Instrument."""

    name: str
    paper: bool
    order_types: frozenset[OrderType] = frozenset(OrderType)
    time_in_force: frozenset[TimeInForce] = frozenset(TimeInForce)
    modify: bool = False        # can change a working order's quantity or price in place
    native_stops: bool = True   # stops rest at the venue (otherwise the engine would have to emulate them)
    # fills are simulated in this process from the market data the engine sees, so replaying the recording
    # rebuilds the venue exactly; a real venue is recovered by reconciling with it instead
    simulated: bool = False
    # the venue's market goes on in real time while the session is down (an exchange's books, paper fills): a resume
    # replays the recording, then continues at the venue's time now, the downtime recorded as a feed gap
    live_market: bool = False


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """The venue's view of the account, for reconciliation against ours."""

    balances: dict[str, float] = field(default_factory=dict)   # asset -> free + locked quantity
    positions: dict[str, float] = field(default_factory=dict)  # symbol -> net quantity
    open_orders: tuple[str, ...] = ()                          # client ids the venue is working


class Broker(Protocol):
    """One venue. submit and cancel never block; outcomes arrive in `events`."""

    capabilities: VenueCapabilities
    events: deque[VenueEvent]

    @property
    def instruments(self) -> Mapping[str, Instrument]:
        """The tick, lot, minimum-quantity and min-notional filters the venue enforces, by symbol."""
        ...

    async def connect(self) -> None:
        """Open the connection; raise NotPaperVenue when the venue cannot prove it is paper or testnet."""
        ...

    async def close(self) -> None: ...

    def submit(self, order: Order) -> None:
        """Send order (already checked by risk); ACCEPTED or REJECTED follows in `events`."""
        ...

    def cancel(self, client_id: str, reason: str) -> CancelAck: ...

    def modify(self, client_id: str, qty: float | None = None, price: float | None = None) -> bool:
        """Change a working order in place where capabilities.modify says the venue can; False otherwise."""
        ...

    def advance(self, ts: int) -> None:
        """Market time is about to reach ts: a simulated venue delivers orders that arrived before it."""
        ...

    def on_book(self, book: BookSnapshot) -> None:
        """Market data the engine saw; a simulated venue matches against it, a real one ignores it."""
        ...

    def on_trade(self, tick: TradeTick) -> None: ...

    def on_bar(self, bar: Bar) -> None: ...

    async def account(self) -> AccountSnapshot: ...


def require_paper(broker: Broker) -> None:
    """Refuse a venue that does not say it is paper or testnet."""
    caps = broker.capabilities
    if not caps.paper:
        raise NotPaperVenue(f"venue {caps.name!r} is not a paper or testnet venue; paperdesk trades paper money only "
                            "and sends nothing to it")
