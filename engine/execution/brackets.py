"""Brackets: stop-loss and take-profit orders that follow a strategy's position, one canceling the other.

One bracket per (strategy, symbol). Its children are reduce-only orders on the simulated venue, sized
to what the strategy holds (less what its own open exits already take), and re-placed whenever that
changes: when one child fills, the other shrinks or is canceled (OCO). Children are contingent: they
do not count as the strategy's pending quantity, so target_position does not see them as exits.
A trailing stop is watched here on every price and leaves as a market close-out (counted as pending,
unlike the children) when the price falls back by the trail from its best level since entry. The same
watch hands every price to the order manager's held stops, the ones a venue without native stops
cannot rest (a stop-loss child among them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from engine.model.event_log import EventLevel
from engine.model.instrument import Instrument
from engine.model.order import Order, OrderOrigin, OrderSide, OrderStatus, OrderType

Key = tuple[str, str]


class ExitPolicy(Protocol):
    """What brackets ask of risk and breakers: may exits be placed now, and where percentages start."""

    def exits_allowed(self, key: Key) -> bool: ...
    def entry_price(self, key: Key) -> float: ...


class OrderDesk(Protocol):
    """The order manager's side brackets use."""

    orders: dict[str, Order]
    log: Callable[[EventLevel, str], None]

    def submit(self, strategy: str, symbol: str, side: OrderSide, qty: float,
               order_type: OrderType = ..., price: float | None = ..., stop_price: float | None = ...,
               *, reduce_only: bool = ..., origin: OrderOrigin = ..., note: str = ...) -> Order: ...
    def cancel(self, client_id: str, reason: str = ...) -> bool: ...
    def pending_qty(self, key: Key) -> float: ...
    def trigger_stops(self, symbol: str, price: float) -> None: ...


@dataclass(frozen=True, slots=True)
class ExitSpec:
    """Exits for an entry: absolute prices from the intent win over percentages from config."""

    stop_loss: float | None = None
    take_profit: float | None = None
    stop_pct: float | None = None
    take_profit_pct: float | None = None
    trailing_pct: float | None = None


@dataclass(slots=True)
class Bracket:
    spec: ExitSpec
    stop_id: str | None = None
    take_id: str | None = None
    extreme: float | None = None      # best price since entry, for the trailing stop
    trailing_sent: str | None = None  # the trailing exit in flight


class Brackets:
    """Every strategy's bracket, by (strategy, symbol)."""

    def __init__(self, desk: OrderDesk, held: Mapping[Key, float], instruments: Mapping[str, Instrument],
                 policy: ExitPolicy) -> None:
        self.desk = desk
        self.held = held  # the account's per-strategy quantities (the same dict, so always current)
        self.instruments = instruments
        self.policy = policy
        self.by_key: dict[Key, Bracket] = {}
        # the symbols whose every price the engine sends to on_price, with the brackets trailing there (an empty
        # set: only held stops are watched)
        self.trailing: dict[str, set[Key]] = {}
        self._busy: set[Key] = set()
        self._dirty: set[Key] = set()

    def attach(self, key: Key, spec: ExitSpec) -> None:
        """An entry is going out with these exits; they apply to the whole position it adds to."""
        bracket = self.by_key.get(key)
        if bracket is None:
            self.by_key[key] = Bracket(spec)
        else:
            bracket.spec = spec
            if not self.held.get(key, 0.0):
                bracket.extreme = None  # a new position, not an addition to one
        if spec.trailing_pct is not None:
            self.trailing.setdefault(key[1], set()).add(key)

    def resync(self, key: Key) -> None:
        """Make the children match the position (re-entrant calls from fills are folded into one more pass)."""
        if key not in self.by_key:
            return
        if key in self._busy:
            self._dirty.add(key)
            return
        self._busy.add(key)
        try:
            while True:
                self._dirty.discard(key)
                self._resync(key)
                if key not in self._dirty:
                    break
        finally:
            self._busy.discard(key)

    def watch(self, symbol: str) -> None:
        """Have the engine send every price of symbol here from now on."""
        self.trailing.setdefault(symbol, set())

    def on_price(self, symbol: str, price: float) -> None:
        """Trailing stops first (one that fires cancels its bracket's held stop-loss), then the held stops."""
        self._trail(symbol, price)
        self.desk.trigger_stops(symbol, price)

    def _trail(self, symbol: str, price: float) -> None:
        for key in list(self.trailing.get(symbol, ())):
            bracket = self.by_key.get(key)
            if bracket is None or bracket.spec.trailing_pct is None:
                self.trailing[symbol].discard(key)
                continue
            held = self.held.get(key, 0.0)
            if not held or bracket.trailing_sent is not None or not self.policy.exits_allowed(key):
                continue
            long = held > 0
            best = bracket.extreme
            bracket.extreme = best = price if best is None else (max(best, price) if long else min(best, price))
            pct = bracket.spec.trailing_pct
            if (price <= best * (1 - pct)) if long else (price >= best * (1 + pct)):
                self._cancel(bracket)
                qty = self.instruments[key[1]].floor_qty(abs(held))
                # a close-out at market, counted as the strategy's pending quantity so its own exit cannot double it
                order = self.desk.submit(key[0], key[1], OrderSide.SELL if long else OrderSide.BUY, qty,
                                         reduce_only=True, origin=OrderOrigin.FLATTEN,
                                         note=f"trailing stop: {price:g} is {pct:.2%} off the best {best:g}")
                if order.is_open:
                    bracket.trailing_sent = order.client_id
                elif order.status is OrderStatus.DENIED:
                    # retrying on every price would flood the order log; the stop and take-profit still stand
                    bracket.spec = replace(bracket.spec, trailing_pct=None)
                    self.desk.log(EventLevel.WARN, f"trailing stop for {key[0]} {key[1]} dropped: {order.reason}")

    def drop(self, key: Key) -> None:
        bracket = self.by_key.pop(key, None)
        if bracket is not None:
            self._cancel(bracket)
            self.trailing.get(key[1], set()).discard(key)

    # ---- internals ---------------------------------------------------------------------------

    def _resync(self, key: Key) -> None:
        desk = self.desk
        bracket = self.by_key[key]
        held = self.held.get(key, 0.0)
        pending = desk.pending_qty(key)
        if bracket.trailing_sent is not None:
            sent = desk.orders.get(bracket.trailing_sent)
            if sent is None or not sent.is_open:
                bracket.trailing_sent = None
        if held == 0.0:
            bracket.extreme = None  # that position is gone: the next one's trailing stop starts from its own prices
            if pending == 0.0:
                self.drop(key)  # flat and nothing on the way: the bracket is done
            else:
                self._cancel(bracket)
            return
        expected = held + pending
        qty = min(abs(held), abs(expected)) if held * expected > 0 else 0.0
        instrument = self.instruments[key[1]]
        qty = instrument.floor_qty(qty)
        if qty <= 0 or bracket.trailing_sent is not None or not self.policy.exits_allowed(key):
            self._cancel(bracket)
            return
        long = held > 0
        side = OrderSide.SELL if long else OrderSide.BUY
        entry = self.policy.entry_price(key)
        spec = bracket.spec
        # a strategy's own exit prices go on the tick grid too, as the percentages do: off it, the venue refuses them
        stop = None if spec.stop_loss is None else instrument.round_price(spec.stop_loss)
        if stop is None and spec.stop_pct is not None:
            stop = instrument.round_price(entry * (1 - spec.stop_pct if long else 1 + spec.stop_pct))
        take = None if spec.take_profit is None else instrument.round_price(spec.take_profit)
        if take is None and spec.take_profit_pct is not None:
            take = instrument.round_price(entry * (1 + spec.take_profit_pct if long else 1 - spec.take_profit_pct))
        bracket.stop_id = self._place(bracket.stop_id, key, side, qty, OrderType.STOP, None, stop)
        bracket.take_id = self._place(bracket.take_id, key, side, qty, OrderType.LIMIT, take, None)

    def _place(self, current: str | None, key: Key, side: OrderSide, qty: float, order_type: OrderType,
               price: float | None, stop: float | None) -> str | None:
        desk = self.desk
        order = desk.orders.get(current) if current else None
        if order is not None and order.is_open and order.status is not OrderStatus.TRIGGERED:
            if (order.side, order.remaining, order.price, order.stop_price) == (side, qty, price, stop):
                return current
            if not desk.cancel(order.client_id):
                return current  # the venue is ending it (a fill on its way): the next resync sees the outcome
        elif order is not None and order.is_open:
            return current  # a triggered stop is on its way to filling; let it
        if (price if order_type is OrderType.LIMIT else stop) is None:
            return None
        new = desk.submit(key[0], key[1], side, qty, order_type, price, stop, reduce_only=True,
                          origin=OrderOrigin.EXIT, note="stop-loss" if order_type is OrderType.STOP else "take-profit")
        return new.client_id if new.is_open else None

    def _cancel(self, bracket: Bracket) -> None:
        for cid in (bracket.stop_id, bracket.take_id):
            if cid is not None:
                self.desk.cancel(cid)
        bracket.stop_id = bracket.take_id = None
