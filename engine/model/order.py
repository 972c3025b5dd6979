"""Orders and their one explicit state machine.

The transition table follows nautilus_trader's (see DESIGN.md), including the race in which a
fill arrives for an order the venue has already reported canceled.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class OrderSide(IntEnum):
    """BUY is +1 and SELL is -1 so that side * qty is the signed position change."""

    BUY = 1
    SELL = -1

    @property
    def opposite(self) -> OrderSide:
        return OrderSide(-self.value)


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderOrigin(StrEnum):
    """Who made an order, which decides the checks it passes."""

    STRATEGY = "strategy"  # a strategy's intent: every check
    EXIT = "exit"          # a bracket child (stop-loss, take-profit): trading state and reduce-only
    FLATTEN = "flatten"    # a close-out by a breaker, the emergency stop or a trailing stop: no checks


class DenialRule(StrEnum):
    """The rule that refused an intent or an order."""

    SIZING = "sizing"
    PHASE_SYMBOLS = "phase_symbols"
    PHASE_EXPOSURE = "phase_exposure"
    TRADING_STATE = "trading_state"
    REDUCE_ONLY = "reduce_only"
    SUBMIT_RATE = "submit_rate"
    MAX_ORDER_QTY = "max_order_qty"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION_QTY = "max_position_qty"
    MAX_POSITION_NOTIONAL = "max_position_notional"
    MAX_GROSS_EXPOSURE = "max_gross_exposure"
    MAX_NET_EXPOSURE = "max_net_exposure"
    MAX_OPEN_POSITIONS = "max_open_positions"
    MAX_TRADES_PER_DAY = "max_trades_per_day"
    CASH = "cash"
    MARGIN = "margin"
    CORRELATION = "correlation"
    VAR = "var"


class OrderStatus(StrEnum):
    INITIALIZED = "INITIALIZED"
    DENIED = "DENIED"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    TRIGGERED = "TRIGGERED"
    PENDING_CANCEL = "PENDING_CANCEL"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


S = OrderStatus
_FILLS = {S.PARTIALLY_FILLED, S.FILLED}
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.INITIALIZED: frozenset({S.DENIED, S.SUBMITTED, S.REJECTED, S.CANCELED}),
    # a venue may report a fill before its acknowledgement arrives
    S.SUBMITTED: frozenset({S.ACCEPTED, S.REJECTED, S.CANCELED, S.EXPIRED, S.PENDING_CANCEL} | _FILLS),
    S.ACCEPTED: frozenset({S.TRIGGERED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.REJECTED} | _FILLS),
    S.TRIGGERED: frozenset({S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.REJECTED} | _FILLS),
    # ACCEPTED or TRIGGERED again means the cancel failed; REJECTED: the venue never took the order at all
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.ACCEPTED, S.TRIGGERED, S.EXPIRED, S.REJECTED} | _FILLS),
    S.PARTIALLY_FILLED: frozenset({S.PENDING_CANCEL, S.CANCELED, S.EXPIRED} | _FILLS),
    # a fill that was already on the wire when the cancel was confirmed
    S.CANCELED: frozenset({S.FILLED}),
    S.DENIED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
    S.FILLED: frozenset(),
}
OPEN_STATUSES = frozenset({S.SUBMITTED, S.ACCEPTED, S.TRIGGERED, S.PENDING_CANCEL, S.PARTIALLY_FILLED})


class IllegalOrderTransition(Exception):
    """An order was asked to move to a state its current state cannot reach."""

    def __init__(self, order: Order, new_status: OrderStatus) -> None:
        super().__init__(f"order {order.client_id}: illegal transition {order.status.value} -> {new_status.value}")
        self.client_id = order.client_id
        self.from_status = order.status
        self.to_status = new_status


@dataclass(frozen=True, slots=True)
class Denial:
    """Why the risk manager refused an order: the rule, its limit and the value that broke it."""

    rule: DenialRule
    limit: float | None
    value: float | None
    message: str

    def line(self) -> str:
        return f"{self.rule}: {self.message}"


@dataclass(slots=True, eq=False)
class Order:
    """One order; client_id is unique within a session and stable across resends."""

    client_id: str
    strategy: str
    symbol: str
    side: OrderSide
    qty: float
    type: OrderType = OrderType.MARKET
    price: float | None = None
    stop_price: float | None = None
    tif: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    created_ns: int = 0
    status: OrderStatus = OrderStatus.INITIALIZED
    filled_qty: float = 0.0
    avg_fill_price: float = 0.0
    reason: str = ""
    origin: OrderOrigin = OrderOrigin.STRATEGY
    denial: Denial | None = None

    @property
    def remaining(self) -> float:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def transition(self, new_status: OrderStatus, reason: str = "") -> None:
        """Move to new_status or raise IllegalOrderTransition; repeated partial fills are legal."""
        if new_status not in TRANSITIONS[self.status]:
            raise IllegalOrderTransition(self, new_status)
        self.status = new_status
        if reason:
            self.reason = reason

    def apply_fill(self, qty: float, price: float) -> None:
        """Account for a fill of qty at price and move to PARTIALLY_FILLED or FILLED."""
        if qty <= 0 or qty > self.remaining + 1e-9 * max(1.0, self.qty):
            raise ValueError(f"order {self.client_id}: fill of {qty} exceeds remaining {self.remaining}")
        total = self.filled_qty + qty
        self.avg_fill_price = (self.avg_fill_price * self.filled_qty + price * qty) / total
        self.filled_qty = total
        done = self.remaining <= 1e-9 * max(1.0, self.qty)
        if self.status is OrderStatus.CANCELED and not done:
            # late partial fill after a confirmed cancel: the quantity counts, the order stays canceled
            return
        self.transition(OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED)
