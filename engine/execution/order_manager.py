"""The order manager: owns every order, its client id, the open set and each strategy's pending quantity.

Orders are created here with the next client id (stable: a resend after a reconnect reuses it, so it
can never double an order), pass the pre-trade gate, and go to the broker. What the broker reports
comes back as VenueEvents, which apply() turns into the order's next state through the one state
machine; an event for an order we do not know is logged, never guessed at. A stop the broker cannot
rest is held here instead and sent when its price trades (engine/execution/stop_emulation.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from engine.clock import Clock
from engine.execution.brackets import Brackets, ExitPolicy
from engine.execution.stop_emulation import HeldStops, StopVenue, emulation_reason, released, stop_violation
from engine.model.event_log import EventLevel
from engine.model.instrument import Instrument
from engine.model.order import Denial, Order, OrderOrigin, OrderSide, OrderStatus, OrderType, TimeInForce
from engine.model.venue_event import CancelAck, VenueEvent, VenueEventKind

Key = tuple[str, str]
K = VenueEventKind


class PreTradeGate(Protocol):
    """The risk side of submission: refuse with a typed Denial, or take note that an order went out."""

    def check(self, order: Order) -> Denial | None: ...
    def submitted(self, order: Order) -> None: ...


class OrderJournal(Protocol):
    def order(self, order: Order) -> None: ...


class OrderRoute(Protocol):
    """Where orders go: the broker's submit and cancel (engine/brokers/broker.py has the whole protocol)."""

    @property
    def capabilities(self) -> StopVenue: ...
    def submit(self, order: Order) -> None: ...
    def cancel(self, client_id: str, reason: str) -> CancelAck: ...


class OrderManager:
    """Orders by client id, the open ones, and the signed quantity each strategy's open orders would add."""

    def __init__(self, clock: Clock, route: OrderRoute, gate: PreTradeGate, log: Callable[[EventLevel, str], None],
                 held: Mapping[Key, float], instruments: Mapping[str, Instrument], exit_policy: ExitPolicy,
                 id_prefix: str = "O") -> None:
        self.clock = clock
        self.route = route
        self.instruments = instruments
        self.gate = gate
        self.log = log
        self.journal: OrderJournal | None = None
        self.orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}  # the open ones, kept as they change: risk asks for them on every order
        self._ends: deque[tuple[int, str]] = deque()  # (when, client id) of each order that ended, oldest first
        self._pending: dict[Key, float] = {}
        self._prefix = id_prefix
        self._seq = 0
        self._before_cancel: dict[str, OrderStatus] = {}  # where an order goes back if the venue refuses a cancel
        self.held_stops = HeldStops()
        self.brackets = Brackets(self, held, instruments, exit_policy)

    # ---- orders out -------------------------------------------------------------------------------

    def submit(self, strategy: str, symbol: str, side: OrderSide, qty: float,
               order_type: OrderType = OrderType.MARKET, price: float | None = None,
               stop_price: float | None = None, tif: TimeInForce = TimeInForce.GTC, reduce_only: bool = False,
               origin: OrderOrigin = OrderOrigin.STRATEGY, note: str = "") -> Order:
        """Create an order with the next client id, pass it through the gate, and send it to the broker."""
        self._seq += 1
        order = Order(f"{self._prefix}{self._seq:07d}", strategy, symbol, side, qty, order_type, price, stop_price,
                      tif, reduce_only, self.clock.now_ns(), reason=note, origin=origin)
        self.orders[order.client_id] = order
        denial = self.gate.check(order)
        if denial is not None:
            order.denial = denial
            order.transition(OrderStatus.DENIED, denial.line())
            self._changed(order)
            self.log(EventLevel.WARN, f"order {order.client_id} ({strategy} {side.name} {qty:g} {symbol}) denied: "
                                      f"{order.reason}")
            return order
        order.transition(OrderStatus.SUBMITTED)
        self._changed(order)
        if origin is not OrderOrigin.EXIT:  # bracket children are contingent: not the strategy's pending quantity
            key = (strategy, symbol)
            self._pending[key] = self._pending.get(key, 0.0) + side * qty
        emulated = emulation_reason(self.route.capabilities, order_type)
        if emulated is None:
            self.route.submit(order)
        else:
            self._hold(order, emulated)
        self.gate.submitted(order)
        if origin is OrderOrigin.STRATEGY:
            self.brackets.resync((strategy, symbol))  # the bracket follows the position the strategy expects
        return order

    def flatten_order(self, key: Key, side: OrderSide, qty: float, why: str) -> Order:
        """A close-out at market for a breaker or the emergency stop: it passes no checks."""
        return self.submit(key[0], key[1], side, qty, origin=OrderOrigin.FLATTEN, note=why)

    def drop_bracket(self, key: Key) -> None:
        self.brackets.drop(key)

    def cancel(self, client_id: str, reason: str = "canceled on request") -> bool:
        """Ask the broker to cancel; False if the order is unknown, no longer open, or the venue no longer has it."""
        order = self.orders.get(client_id)
        if order is None or not order.is_open or order.status is OrderStatus.PENDING_CANCEL:
            return False
        if self.held_stops.drop(client_id):
            self._ended(order, OrderStatus.CANCELED, f"{reason} (a stop held by the engine, never sent to the venue)")
            return True
        # the venue answers first: an order it already filled (the fill still queued) must keep its state
        ack = self.route.cancel(client_id, reason)
        if ack is CancelAck.DONE:
            self._ended(order, OrderStatus.CANCELED, reason)
        elif ack is CancelAck.PENDING:
            self._before_cancel[client_id] = order.status
            order.transition(OrderStatus.PENDING_CANCEL)
            self._changed(order)
        else:
            return False  # the venue no longer has it: what it reported (or will) says how it ended
        return True

    # ---- what the venue reports -------------------------------------------------------------------

    def apply(self, event: VenueEvent) -> Order | None:
        """Move the event's order to its next state; None when the order is not ours (logged)."""
        order = self.orders.get(event.client_id)
        if order is None:
            self.log(EventLevel.WARN, f"venue reported {event.kind} for unknown order {event.client_id}; ignored")
            return None
        kind = event.kind
        if kind is K.FILLED:
            fill = event.fill
            assert fill is not None, "a FILLED venue event carries its fill"
            was_open = order.is_open  # a fill after a confirmed cancel: its quantity already left the pending sum
            order.apply_fill(fill.qty, fill.price)
            if not order.is_open:
                self._open.pop(order.client_id, None)
                if was_open:
                    self._ends.append((self.clock.now_ns(), order.client_id))
            if was_open and order.origin is not OrderOrigin.EXIT:
                key = (order.strategy, order.symbol)
                self._pending[key] -= order.side * fill.qty
        elif kind is K.ACCEPTED:
            if order.status is OrderStatus.SUBMITTED:  # a fill may have overtaken the acknowledgement
                order.transition(OrderStatus.ACCEPTED)
                self._changed(order)
        elif kind is K.TRIGGERED and order.status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED):
            if order.status is OrderStatus.SUBMITTED:
                order.transition(OrderStatus.ACCEPTED)
            order.transition(OrderStatus.TRIGGERED)
            self._changed(order)
        elif not order.is_open:
            # a venue may report the end of an order that has already ended (a cancel confirmed after its fill)
            self.log(EventLevel.INFO, f"venue reported {kind} for {order.client_id}, already {order.status}")
        elif kind is K.REJECTED:
            self._rejected(order, event.reason)
        elif kind is K.CANCELED:
            self._ended(order, OrderStatus.CANCELED, event.reason)
        elif kind is K.EXPIRED:
            self._ended(order, OrderStatus.EXPIRED, event.reason)
        elif kind is K.CANCEL_REJECTED and order.status is OrderStatus.PENDING_CANCEL:
            back = self._before_cancel.pop(order.client_id, OrderStatus.ACCEPTED)
            if order.filled_qty and back is not OrderStatus.TRIGGERED:
                back = OrderStatus.PARTIALLY_FILLED
            self._back(order, back, f"cancel rejected by the venue: {event.reason}")
        return order

    # ---- stops the engine holds --------------------------------------------------------------------

    def trigger_stops(self, symbol: str, price: float) -> None:
        """A price of symbol: every held stop it reaches goes to the venue, under its own client id."""
        for order in self.held_stops.reached_by(symbol, price):
            sent_as = "a market order" if order.type is OrderType.STOP else f"a limit order at {order.price:g}"
            order.transition(OrderStatus.TRIGGERED, f"emulated stop triggered at {price:g}: sent to "
                                                    f"{self.route.capabilities.name} as {sent_as}")
            self._changed(order)
            self.log(EventLevel.INFO, f"order {order.client_id} ({order.strategy} {order.side.name} {order.qty:g} "
                                      f"{order.symbol}) stop {order.stop_price:g} triggered at {price:g}; "
                                      f"sent as {sent_as}")
            self.route.submit(released(order, self.clock.now_ns()))

    # ---- what others ask --------------------------------------------------------------------------

    def open_orders(self) -> list[Order]:
        return list(self._open.values())

    def forget_ended(self, keep: int, ended_before_ns: int) -> list[str]:
        """Drop the orders that ended before ended_before_ns, all but the newest `keep` ended ones; their ids.

        A venue report on a dropped order is then logged as one for an unknown order and ignored."""
        ends, orders, gone = self._ends, self.orders, []
        while len(ends) > keep and ends[0][0] < ended_before_ns:
            client_id = ends.popleft()[1]
            order = orders.get(client_id)
            if order is not None and not order.is_open:
                del orders[client_id]
                gone.append(client_id)
        return gone

    def pending_qty(self, key: Key) -> float:
        """Signed quantity a strategy's open (non-contingent) orders in a symbol would add."""
        return self._pending.get(key, 0.0)

    # ---- internals --------------------------------------------------------------------------------

    def _hold(self, order: Order, why: str) -> None:
        """Keep a stop the venue cannot rest, accepted as a venue would, or refused now if it could never go out."""
        problem = stop_violation(order, self.instruments.get(order.symbol))
        if problem is not None:
            self._rejected(order, f"{problem} ({why})")
            return
        order.transition(OrderStatus.ACCEPTED, f"{order.reason}; {why}" if order.reason else why)
        self._changed(order)
        self.held_stops.hold(order)
        self.brackets.watch(order.symbol)

    def _rejected(self, order: Order, reason: str) -> None:
        self._ended(order, OrderStatus.REJECTED, reason)
        self.log(EventLevel.WARN, f"order {order.client_id} ({order.strategy} {order.side.name} {order.qty:g} "
                                  f"{order.symbol}) rejected: {reason}")

    def _ended(self, order: Order, status: OrderStatus, reason: str) -> None:
        """An order ended unfilled (in part): its remaining quantity is no longer pending."""
        order.transition(status, reason)
        self._before_cancel.pop(order.client_id, None)
        self._changed(order)
        if order.origin is not OrderOrigin.EXIT:
            key = (order.strategy, order.symbol)
            self._pending[key] = self._pending.get(key, 0.0) - order.side * order.remaining

    def _back(self, order: Order, status: OrderStatus, reason: str) -> None:
        order.transition(status, reason)
        self._changed(order)

    def _changed(self, order: Order) -> None:
        """Every transition but a fill's passes here: keep the open set, then journal it."""
        if order.is_open:
            self._open[order.client_id] = order
        elif self._open.pop(order.client_id, None) is not None or order.status is OrderStatus.DENIED:
            self._ends.append((self.clock.now_ns(), order.client_id))
        if self.journal is not None:
            self.journal.order(order)
