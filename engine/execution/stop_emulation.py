"""Stops the engine keeps for a venue that cannot rest them, released to it as market or limit orders.

A venue whose capabilities say it has no native stops (or does not take the order's type) is never sent a
STOP or STOP_LIMIT order. The engine holds the stop instead and watches every price of its symbol the engine
processes (a trade's price, a book's mid, a bar's close). The first one at or through the stop price triggers
it, by the fill simulator's rule, and the stop goes to the venue under its own client id: a STOP as a market
order, a STOP_LIMIT as a limit at its limit price. Triggers follow market events only, so a replay of the
same market data triggers every stop at the same event.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from engine.model.instrument import Instrument
from engine.model.order import Order, OrderSide, OrderType

STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})


class StopVenue(Protocol):
    """What a venue's capabilities say about stops (VenueCapabilities in engine/brokers/broker.py)."""

    @property
    def name(self) -> str: ...
    @property
    def order_types(self) -> frozenset[OrderType]: ...
    @property
    def native_stops(self) -> bool: ...


def emulation_reason(venue: StopVenue, order_type: OrderType) -> str | None:
    """Why the engine keeps an order of this type itself on this venue; None when the venue takes it."""
    if order_type not in STOP_TYPES:
        return None
    if not venue.native_stops:
        return f"stop emulated by the engine: {venue.name} has no native stops"
    if order_type not in venue.order_types:
        return f"stop emulated by the engine: {venue.name} takes no {order_type} orders"
    return None


def stop_violation(order: Order, instrument: Instrument | None) -> str | None:
    """What the venue would refuse in a held stop, checked when it is placed rather than when it triggers."""
    if instrument is None:
        return f"unknown symbol {order.symbol!r}"
    if order.stop_price is None:
        return f"{order.type} order needs a stop price"
    reason = instrument.violation(order.qty, order.stop_price, None)
    if reason:
        return f"stop {reason}"
    if order.type is OrderType.STOP_LIMIT:
        if order.price is None:
            return f"{order.type} order needs a limit price"
        return instrument.violation(order.qty, order.price, None)
    return None


def reached(order: Order, price: float) -> bool:
    """The fill simulator's trigger rule: a buy stop at or above its stop price, a sell stop at or below it."""
    stop = order.stop_price
    assert stop is not None  # stop_violation refused a stop without one
    return price >= stop if order.side is OrderSide.BUY else price <= stop


def released(order: Order, now_ns: int) -> Order:
    """What the venue is sent once a held stop triggers: the same client id, as a market or a limit order."""
    as_type = OrderType.MARKET if order.type is OrderType.STOP else OrderType.LIMIT
    return replace(order, type=as_type, stop_price=None, created_ns=now_ns)


class HeldStops:
    """The stops the engine holds, by symbol, in the order they were placed (the order they trigger in)."""

    def __init__(self) -> None:
        self._by_symbol: dict[str, dict[str, Order]] = {}
        self._symbol_of: dict[str, str] = {}

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._symbol_of

    def hold(self, order: Order) -> None:
        self._by_symbol.setdefault(order.symbol, {})[order.client_id] = order
        self._symbol_of[order.client_id] = order.symbol

    def drop(self, client_id: str) -> bool:
        """Stop holding an order (it was canceled); False if it is not held."""
        symbol = self._symbol_of.pop(client_id, None)
        if symbol is None:
            return False
        del self._by_symbol[symbol][client_id]
        return True

    def reached_by(self, symbol: str, price: float) -> list[Order]:
        """The held stops of symbol that price triggers, no longer held."""
        held = self._by_symbol.get(symbol)
        if not held:
            return []
        triggered = [order for order in held.values() if reached(order, price)]
        for order in triggered:
            self.drop(order.client_id)
        return triggered
