"""The Strategy base class: synchronous, no I/O; it sees market data and expresses intent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from engine.model.decision import Decision, Signal
from engine.model.fill import Fill
from engine.model.market import Bar, TradeTick
from engine.model.order import OrderSide, OrderType, TimeInForce


class StrategyStatus(StrEnum):
    RUNNING = "RUNNING"
    FAILED = "FAILED"  # raised an exception; receives no more events


class StrategyParams(BaseModel):
    """Base of every strategy's parameter model: unknown parameters are an error, not ignored."""

    # as config sections: a boolean is not a number, 3.0 is not a whole number, no inf or nan
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


P = TypeVar("P", bound=StrategyParams)


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """One of the strategy's own working orders, as it may see it."""

    client_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    qty: float
    filled: float
    price: float | None
    stop_price: float | None
    status: str


class StrategyContext(Protocol):
    """What the engine offers a strategy, and all of it. Intents are recorded as decisions before anything else."""

    def now_ns(self) -> int: ...
    def strategy_position(self, strategy: str, symbol: str) -> float: ...
    def equity(self) -> float: ...
    def trading_state(self, strategy: str) -> str: ...
    def open_orders(self, strategy: str) -> list[OpenOrder]: ...
    def cancel(self, strategy: str, client_id: str, reason: str) -> bool: ...
    def decide(self, strategy: Strategy, decision: Decision) -> None: ...
    def intend_target(self, strategy: Strategy, decision: Decision, stop_loss: float | None = None,
                      take_profit: float | None = None, trailing_stop: float | None = None) -> None: ...
    def intend_order(self, strategy: Strategy, decision: Decision, side: OrderSide, qty: float,
                     order_type: OrderType, price: float | None, stop_price: float | None,
                     tif: TimeInForce, reduce_only: bool, stop_loss: float | None = None,
                     take_profit: float | None = None, trailing_stop: float | None = None) -> None: ...


class _Unattached:
    """The context of a strategy no engine has attached yet: anything it asks says so."""

    def __init__(self, name: str) -> None:
        self.name = name

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"strategy {self.name} is not attached to an engine")

    now_ns = strategy_position = decide = intend_target = intend_order = _refuse
    equity = trading_state = open_orders = cancel = _refuse


class Strategy(Generic[P]):
    """Subclass as Strategy[MyParams], set `kind` and `Params = MyParams`, override on_bar (and/or on_tick, on_fill).

    The type argument types self.params; Params is the model __init__ validates with, so the two must agree.

    Each evaluation should end in exactly one intent per symbol: target_position, buy, sell or
    hold. An evaluation that expresses none is recorded as a HOLD with reason "no decision".
    """

    kind: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    params: P

    def __init__(self, name: str, symbols: list[str], timeframe: str,
                 params: Mapping[str, Any] | None = None, timeframes: Sequence[str] = ()) -> None:
        self.name = name
        self.symbols = list(symbols)
        self.timeframe = timeframe  # the one decisions are made on
        # every timeframe it gets bars of, the decision timeframe first
        self.timeframes = [timeframe, *(tf for tf in timeframes if tf != timeframe)]
        # a type variable cannot appear in a ClassVar: Params matches P by convention (test_strategy_typing checks)
        self.params = cast(P, self.Params(**dict(params or {})))
        self.status = StrategyStatus.RUNNING
        self.error = ""
        self.decided = False
        # never None, so every intent is one attribute lookup on the hot path (an unattached one raises)
        self._ctx: StrategyContext = _Unattached(name)
        self._ts = 0

    def attach(self, ctx: StrategyContext) -> None:
        self._ctx = ctx
        self.on_start()


    def lookback(self) -> int:
        """Bars (of each of its timeframes) it needs before its decisions mean anything. A paper session on a venue
        with history (an exchange's candles) gives it that many bars before the first live one; what it intends on
        them is recorded as a warm-up decision and never traded. 0: it needs none."""
        return 0

    # ---- hooks ----------------------------------------------------------------------------

    def on_start(self) -> None:
        """Called once when the engine attaches the strategy."""

    def on_bar(self, bar: Bar) -> None:
        """A bar of one of self.timeframes closed for one of self.symbols (bar.timeframe says which). Bars that
        close together arrive lower timeframe first; each bar of self.timeframe (the first) expects a decision."""

    def on_tick(self, tick: TradeTick) -> None:
        """A trade printed for one of self.symbols (only with tick data)."""

    def on_fill(self, fill: Fill) -> None:
        """One of this strategy's orders filled (partly)."""

    # ---- what a strategy can ask ----------------------------------------------------------

    def position(self, symbol: str) -> float:
        """This strategy's own net quantity in symbol."""
        return self._ctx.strategy_position(self.name, symbol)

    def now_ns(self) -> int:
        """Market time in nanoseconds (never the wall clock: a replay must see what the session saw)."""
        return self._ctx.now_ns()

    def equity(self) -> float:
        """The account's equity now (cash plus every position at its mark), in the quote currency."""
        return self._ctx.equity()

    def trading_state(self) -> str:
        """What binds this strategy now: ACTIVE, PAUSED, REDUCING, COOLDOWN, HALTED or EMERGENCY_STOPPED."""
        return self._ctx.trading_state(self.name)

    def open_orders(self, symbol: str | None = None) -> list[OpenOrder]:
        """This strategy's own working orders (of symbol, if given), oldest first."""
        orders = self._ctx.open_orders(self.name)
        return orders if symbol is None else [o for o in orders if o.symbol == symbol]

    def cancel(self, client_id: str, reason: str = "") -> bool:
        """Cancel one of this strategy's own working orders; False if it is not one, or no longer open."""
        return self._ctx.cancel(self.name, client_id, reason or f"canceled by {self.name}")

    # ---- intents ----------------------------------------------------------------------------

    def target_position(self, symbol: str, qty: float, *, confidence: float = 1.0, reason: str = "",
                        indicators: dict[str, float] | None = None, stop_loss: float | None = None,
                        take_profit: float | None = None, trailing_stop: float | None = None) -> None:
        """Hold qty (signed) of symbol; the engine orders the difference at market.

        stop_loss and take_profit are prices, trailing_stop a fraction (0.01 = 1%); they bracket the
        position (config's [strategies.exits] supplies them otherwise). The strategy's sizing mode
        may resize an entry; exits are never resized.
        """
        signal = Signal.LONG if qty > 0 else Signal.SHORT if qty < 0 else Signal.FLAT
        decision = Decision(self._ts, self.name, symbol, signal, confidence, reason, indicators or {}, qty)
        self.decided = True
        self._ctx.intend_target(self, decision, stop_loss, take_profit, trailing_stop)

    def buy(self, symbol: str, qty: float, *, price: float | None = None, stop_price: float | None = None,
            tif: TimeInForce = TimeInForce.GTC, reduce_only: bool = False, confidence: float = 1.0,
            reason: str = "", indicators: dict[str, float] | None = None, stop_loss: float | None = None,
            take_profit: float | None = None, trailing_stop: float | None = None) -> None:
        """Buy qty: market, limit at price, stop at stop_price (stop-limit with both); exits as target_position."""
        self._order(Signal.BUY, OrderSide.BUY, symbol, qty, price, stop_price, tif, reduce_only, confidence,
                    reason, indicators, (stop_loss, take_profit, trailing_stop))

    def sell(self, symbol: str, qty: float, *, price: float | None = None, stop_price: float | None = None,
             tif: TimeInForce = TimeInForce.GTC, reduce_only: bool = False, confidence: float = 1.0,
             reason: str = "", indicators: dict[str, float] | None = None, stop_loss: float | None = None,
             take_profit: float | None = None, trailing_stop: float | None = None) -> None:
        """Sell qty: market, limit at price, stop at stop_price (stop-limit with both); exits as target_position."""
        self._order(Signal.SELL, OrderSide.SELL, symbol, qty, price, stop_price, tif, reduce_only, confidence,
                    reason, indicators, (stop_loss, take_profit, trailing_stop))

    def hold(self, symbol: str, *, reason: str = "", confidence: float = 0.0,
             indicators: dict[str, float] | None = None) -> None:
        """Decide to do nothing, and say why."""
        self.decided = True
        self._ctx.decide(self, Decision(self._ts, self.name, symbol, Signal.HOLD, confidence, reason,
                                            indicators or {}))

    def _order(self, signal: Signal, side: OrderSide, symbol: str, qty: float, price: float | None,
               stop_price: float | None, tif: TimeInForce, reduce_only: bool, confidence: float, reason: str,
               indicators: dict[str, float] | None,
               exits: tuple[float | None, float | None, float | None]) -> None:
        if stop_price is not None:
            order_type = OrderType.STOP_LIMIT if price is not None else OrderType.STOP
        else:
            order_type = OrderType.LIMIT if price is not None else OrderType.MARKET
        decision = Decision(self._ts, self.name, symbol, signal, confidence, reason, indicators or {}, qty)
        self.decided = True
        self._ctx.intend_order(self, decision, side, qty, order_type, price, stop_price, tif, reduce_only, *exits)
