"""The simulated venue behind the Broker protocol: the fill simulator, with its reports queued as VenueEvents.

It is the default venue and the one every backtest (the twin included) trades on. It keeps its own
ledger of what it filled, so reconciliation against the engine's account is a real comparison.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from engine.brokers.broker import AccountSnapshot, VenueCapabilities
from engine.clock import Clock
from engine.execution.fill_model import FillModel
from engine.execution.fill_simulator import FillSimulator
from engine.model.fill import Fill
from engine.model.instrument import Instrument
from engine.model.market import Bar, BookSnapshot, TradeTick
from engine.model.order import Order
from engine.model.venue_event import CancelAck, VenueEvent, VenueEventKind

K = VenueEventKind


class PaperBroker:
    """The simulated venue: fills against the market data the engine sees, after the configured latency."""

    capabilities = VenueCapabilities("simulated", paper=True, simulated=True)

    def __init__(self, clock: Clock, instruments: dict[str, Instrument], model: FillModel | None = None,
                 starting_cash: float = 0.0) -> None:
        self.clock = clock
        self.events: deque[VenueEvent] = deque()
        self.simulator = FillSimulator(clock, instruments, model or FillModel(), self)
        # market data goes straight to the simulator: these run on every event, a wrapper call each would show
        self.advance: Callable[[int], None] = self.simulator.advance
        self.on_book: Callable[[BookSnapshot], None] = self.simulator.on_book
        self.on_trade: Callable[[TradeTick], None] = self.simulator.on_trade
        self.on_bar: Callable[[Bar], None] = self.simulator.on_bar
        self.instruments = instruments
        self._balances: dict[str, float] = {}
        self._positions: dict[str, float] = {}
        self._cash_asset = next((i.quote for i in instruments.values()), "")
        if self._cash_asset:
            self._balances[self._cash_asset] = starting_cash

    # ---- Broker -------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Nothing to connect to: the venue lives in this process."""

    async def close(self) -> None:
        """Nothing to close."""

    def submit(self, order: Order) -> None:
        self.simulator.submit(order)

    def cancel(self, client_id: str, reason: str) -> CancelAck:
        return CancelAck.DONE if self.simulator.cancel(client_id, reason, report=False) else CancelAck.UNKNOWN

    def modify(self, client_id: str, qty: float | None = None, price: float | None = None) -> bool:
        return False  # capabilities.modify is False: the order manager cancels and replaces

    async def account(self) -> AccountSnapshot:
        return AccountSnapshot(dict(self._balances), {s: q for s, q in self._positions.items() if q},
                               tuple(o.client_id for o in self.simulator.working_orders()))

    # ---- VenueListener (the fill simulator's reports) --------------------------------------------

    def order_accepted(self, order: Order, latency_ns: int) -> None:
        self.events.append(VenueEvent(K.ACCEPTED, order.client_id, order.created_ns + latency_ns,
                                      latency_ns=latency_ns))

    def order_rejected(self, order: Order, reason: str) -> None:
        self.events.append(VenueEvent(K.REJECTED, order.client_id, self.clock.now_ns(), reason))

    def order_triggered(self, order: Order) -> None:
        self.events.append(VenueEvent(K.TRIGGERED, order.client_id, self.clock.now_ns()))

    def order_filled(self, order: Order, fill: Fill) -> None:
        signed = fill.side * fill.qty
        instrument = self.instruments[fill.symbol]
        self._positions[fill.symbol] = self._positions.get(fill.symbol, 0.0) + signed
        self._balances[instrument.base] = self._balances.get(instrument.base, 0.0) + signed
        self._balances[instrument.quote] = self._balances.get(instrument.quote, 0.0) + fill.cash_flow
        self.events.append(VenueEvent(K.FILLED, order.client_id, fill.ts, fill=fill))

    def order_canceled(self, order: Order, reason: str) -> None:
        self.events.append(VenueEvent(K.CANCELED, order.client_id, self.clock.now_ns(), reason))
