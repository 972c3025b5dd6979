"""The risk manager: sizing and pre-trade checks, between every intent and the venue.

Nothing reaches a broker without passing it (DESIGN). Strategy orders pass the trading state and
every pre-trade check; bracket exits pass the trading state and reduce-only; close-outs from a
breaker, a trailing stop or the emergency stop pass nothing here. A refusal is a typed Denial
(rule, limit, value). Trading states live with the breakers (engine/breakers/guard.py): risk only
asks which restriction binds a strategy. Everything runs in market time, so a replay reproduces
every denial.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from engine.breakers.trading_state import Restriction, TradingState
from engine.config import BreakersConfig, ExitsConfig, PhaseConfig, RiskConfig, SizingConfig
from engine.execution.brackets import ExitSpec
from engine.model.fill import Fill
from engine.model.instrument import Instrument
from engine.model.market import Bar
from engine.model.order import Denial, DenialRule, Order, OrderOrigin, OrderSide, OrderType
from engine.portfolio.account import Account
from engine.portfolio.returns import ReturnHistory
from engine.risk.checks import Exposure, PreTradeChecks, is_reducing
from engine.risk.round_trips import RoundTrips
from engine.risk.sizing import entry_qty
from engine.strategy.indicators import ATR

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class StrategyRules:
    sizing: SizingConfig = field(default_factory=SizingConfig)
    exits: ExitsConfig = field(default_factory=ExitsConfig)
    phase: int | None = None


@dataclass(frozen=True, slots=True)
class RiskRules:
    """Everything risk and the breakers are configured with; the default checks and trips nothing."""

    risk: RiskConfig = field(default_factory=lambda: RiskConfig(max_submit_rate=None, max_short_exposure=None))
    breakers: BreakersConfig = field(default_factory=lambda: BreakersConfig(
        daily_loss=None, drawdown=None, order_latency_seconds=None, correlation=None, consecutive_losses=None,
        volatility_spike=None, stale_seconds=None, max_clock_skew_seconds=None))
    phases: tuple[PhaseConfig, ...] = ()
    strategies: dict[str, StrategyRules] = field(default_factory=dict)


class TradingStateView(Protocol):
    """Which restriction binds a strategy now (the breakers' side)."""

    def effective(self, strategy: str) -> Restriction: ...


class OpenOrders(Protocol):
    """The order manager's side risk reads: open orders and what each strategy has on the way."""

    def open_orders(self) -> list[Order]: ...
    def pending_qty(self, key: Key) -> float: ...


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a strategy trades, as sizing needs it."""

    symbols: tuple[str, ...]
    timeframe: str


class RiskManager:
    """Sizes entries and checks orders; counts what it refused."""

    def __init__(self, rules: RiskRules, account: Account, instruments: dict[str, Instrument],
                 strategies: Mapping[str, Subscription], history: ReturnHistory, states: TradingStateView,
                 orders: OpenOrders) -> None:
        self.rules = rules
        self.account = account
        self.instruments = instruments
        self.strategies = strategies
        self.history = history
        self.states = states
        self.orders = orders
        self.checks = PreTradeChecks(rules.risk, instruments, history)
        self.trips = RoundTrips()
        self.phase_rules = {p.phase: p for p in rules.phases}
        self.phases: dict[str, int | None] = {name: s.phase for name, s in rules.strategies.items()}
        self.denials = 0
        self._atr: dict[tuple[str, str], ATR] = {}
        for name, s in rules.strategies.items():
            sub = strategies.get(name)
            if s.sizing.mode == "atr" and sub is not None:
                for symbol in sub.symbols:
                    self._atr.setdefault((symbol, sub.timeframe), ATR(s.sizing.atr_period))

    # ---- the engine's hooks -------------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        atr = self._atr.get((bar.symbol, bar.timeframe))
        if atr is not None:
            atr.update(bar.high, bar.low, bar.close)

    @property
    def wants_bars(self) -> bool:
        return bool(self._atr)

    def on_fill(self, fill: Fill) -> float | None:
        """Book the fill in the strategy's round trips; the P&L of the trip it closed, if any."""
        return self.trips.on_fill(fill)

    # ---- sizing -----------------------------------------------------------------------------------

    def size_target(self, strategy: str, symbol: str, target: float,
                    stop: float | None) -> tuple[float | None, Denial | None]:
        """The strategy's target position after sizing and its phase's caps (same sign as asked).

        None means "leave the position as it is": the entry could not be sized (the denial says why).
        """
        held = self.account.strategy_qty.get((strategy, symbol), 0.0)
        if target == 0.0 or (held * target > 0 and abs(target) <= abs(held)):
            return target, None  # flat, or reducing: exits are never resized
        qty, denial = self.size_entry(strategy, symbol, abs(target), stop, adding=False)
        if qty <= 0:
            return None, denial
        return (qty if target > 0 else -qty), denial

    def size_entry(self, strategy: str, symbol: str, requested: float, stop: float | None,
                   adding: bool = True) -> tuple[float, Denial | None]:
        """Absolute entry quantity: the sizing mode, then the risk phase's caps. adding=False sizes a whole target."""
        rules = self.rules.strategies.get(strategy) or StrategyRules()
        account = self.account
        price = account.marks.get(symbol, 0.0)
        equity = account.equity()
        if stop is None and rules.exits.stop_loss_pct is not None:
            stop = price * (1 - rules.exits.stop_loss_pct)
        distance = abs(price - stop) if stop is not None and price else None
        s = self.strategies.get(strategy)
        atr = self._atr.get((symbol, s.timeframe)) if s is not None else None
        qty, denial = entry_qty(rules.sizing, requested, price, equity, distance,
                                atr.value if atr is not None else None, self.trips.of(strategy))
        if denial is not None or qty <= 0:
            return 0.0, denial
        phase = self.phase_rules.get(self.phases.get(strategy) or 0)
        if phase is None:
            return qty, None
        held = {sym: account.strategy_qty.get((strategy, sym), 0.0) + self.orders.pending_qty((strategy, sym))
                for sym in (s.symbols if s is not None else [symbol])}
        if phase.max_symbols is not None and not held.get(symbol) and sum(1 for q in held.values() if q) \
                >= phase.max_symbols:
            return 0.0, Denial(DenialRule.PHASE_SYMBOLS, phase.max_symbols, sum(1 for q in held.values() if q) + 1,
                               f"phase {phase.phase} allows {phase.max_symbols} symbol(s) at once")
        if distance:
            qty = min(qty, phase.risk_per_trade * equity / distance)
        if price > 0:
            others = sum(abs(q) * account.marks.get(sym, 0.0) for sym, q in held.items() if sym != symbol)
            own = 0.0 if not adding else abs(held.get(symbol, 0.0)) * price
            room = max(0.0, phase.max_exposure * equity - others - own) / price
            if qty > room:
                qty = room
                if qty <= 0:
                    used = (others + own) / max(equity, 1e-9)
                    return 0.0, Denial(DenialRule.PHASE_EXPOSURE, phase.max_exposure, used,
                                       f"phase {phase.phase} caps {strategy}'s exposure at {phase.max_exposure:.2%} "
                                       "of equity, and it is used")
        return qty, None

    def exit_spec(self, strategy: str, stop_loss: float | None, take_profit: float | None,
                  trailing: float | None) -> ExitSpec:
        exits = (self.rules.strategies.get(strategy) or StrategyRules()).exits
        return ExitSpec(stop_loss, take_profit, exits.stop_loss_pct, exits.take_profit_pct,
                        trailing if trailing is not None else exits.trailing_pct)

    def entry_price(self, key: Key) -> float:
        """Where a bracket's percentages are measured from: the strategy's own average entry (else the mark)."""
        price = self.trips.entry_price(*key)
        return price if price is not None else self.account.marks.get(key[1], 0.0)

    # ---- checks ------------------------------------------------------------------------------------

    def check(self, order: Order) -> Denial | None:
        """Every check an order must pass before the venue sees it, by its origin; counts refusals."""
        denial = self._check(order)
        if denial is not None:
            self.denials += 1
        return denial

    def _check(self, order: Order) -> Denial | None:
        if order.origin is OrderOrigin.FLATTEN or order.symbol not in self.instruments:
            return None  # an unknown symbol is the venue's to reject
        key = (order.strategy, order.symbol)
        held = self.account.strategy_qty.get(key, 0.0)
        if order.origin is OrderOrigin.EXIT:
            # a bracket child reduces what is held; its sibling may cover the same quantity (OCO)
            if self.states.effective(order.strategy).state is TradingState.EMERGENCY_STOPPED:
                return Denial(DenialRule.TRADING_STATE, None, None, "EMERGENCY_STOPPED: nothing trades until resume")
            if not is_reducing(held, held + order.side * order.qty):
                return Denial(DenialRule.REDUCE_ONLY, abs(held), order.qty,
                              f"exit {order.side.name} {order.qty:g} would not reduce {order.strategy}'s "
                              f"{order.symbol} position of {held:+g}")
            return None
        before = held + self.orders.pending_qty(key)
        reduces = is_reducing(before, before + order.side * order.qty)
        restriction = self.states.effective(order.strategy)
        if restriction.state is not TradingState.ACTIVE and (
                not reduces or restriction.state is TradingState.EMERGENCY_STOPPED):
            return Denial(DenialRule.TRADING_STATE, None, None,
                          f"{restriction.state} ({restriction.source}: {restriction.cause}): "
                          + ("nothing trades until resume" if restriction.state is TradingState.EMERGENCY_STOPPED
                             else "only orders that reduce the position"))
        if order.reduce_only and not reduces:
            return Denial(DenialRule.REDUCE_ONLY, abs(before), order.qty,
                          f"reduce-only {order.side.name} {order.qty:g} would not reduce {order.strategy}'s "
                          f"{order.symbol} position of {before:+g} (open orders included)")
        ts = order.created_ns
        denial = self.checks.throttle(ts)
        if denial is None:
            denial = self.checks.check(order.symbol, order.side, order.qty, self._price(order), ts, self.exposure())
        return denial

    def submitted(self, order: Order) -> None:
        """An order passed and went out: count it, and let the bracket follow the expected position."""
        if order.origin is OrderOrigin.STRATEGY:
            key = (order.strategy, order.symbol)
            before = self.account.strategy_qty.get(key, 0.0) + self.orders.pending_qty(key) - order.side * order.qty
            self.checks.submitted(order.created_ns, not is_reducing(before, before + order.side * order.qty))

    def exposure(self) -> Exposure:
        account = self.account
        net = {s: p.qty for s, p in account.positions.items() if p.qty}
        reserved = 0.0
        for order in self.orders.open_orders():
            if order.origin is OrderOrigin.EXIT:
                continue
            net[order.symbol] = net.get(order.symbol, 0.0) + order.side * order.remaining
            if order.side is OrderSide.BUY:
                reserved += order.remaining * self._price(order)
        return Exposure(account.equity(), account.cash, net, account.marks, reserved)

    def _price(self, order: Order) -> float:
        if order.type is OrderType.LIMIT or order.type is OrderType.STOP_LIMIT:
            return order.price or 0.0
        if order.type is OrderType.STOP:
            return order.stop_price or 0.0
        return self.account.marks.get(order.symbol, 0.0)

    def set_phase(self, strategy: str, phase: int) -> int | None:
        """The operator moved strategy to a defined risk phase; returns the old one."""
        old = self.phases.get(strategy)
        self.phases[strategy] = phase
        return old
