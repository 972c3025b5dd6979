"""The risk manager: sizing, pre-trade checks, trading states, breakers, operator commands, emergency stop.

It sits between every intent and the venue (DESIGN: "nothing reaches a broker without passing risk").
Strategy orders pass the trading state and every pre-trade check; bracket exits pass the trading
state; flattening orders from a breaker or the emergency stop bypass the checks but nothing else.
Everything runs in market time on the engine's thread, so a replay reproduces every denial and trip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.breakers.breakers import (
    ConsecutiveLosses,
    CorrelationBreach,
    DailyLoss,
    Drawdown,
    Gauge,
    OrderLatency,
    Trip,
    VolatilitySpike,
)
from engine.breakers.market_health import MarketHealth
from engine.breakers.trading_state import (
    CANCELS_ENTRIES,
    MARKET_DATA,
    OPERATOR,
    PORTFOLIO,
    Restriction,
    StateChange,
    TradingState,
    TradingStates,
)
from engine.config import BreakersConfig, ExitsConfig, PhaseConfig, RiskConfig, SizingConfig
from engine.execution.brackets import Brackets, ExitSpec
from engine.model.fill import Fill
from engine.model.market import Bar, MarketEvent, TradeTick
from engine.model.order import Denial, Order, OrderSide, OrderStatus, OrderType
from engine.risk.checks import Exposure, PreTradeChecks, is_reducing
from engine.risk.returns import ReturnHistory
from engine.risk.round_trips import RoundTrips
from engine.risk.sizing import entry_qty
from engine.strategy.indicators import ATR

if TYPE_CHECKING:
    from engine.core import Engine

Key = tuple[str, str]
COMMANDS = ("halt", "pause", "resume", "emergency-stop", "phase")


@dataclass(frozen=True, slots=True)
class StrategyRules:
    sizing: SizingConfig = field(default_factory=SizingConfig)
    exits: ExitsConfig = field(default_factory=ExitsConfig)
    phase: int | None = None


@dataclass(frozen=True, slots=True)
class RiskRules:
    """Everything the risk manager is configured with; the default checks and trips nothing."""

    risk: RiskConfig = field(default_factory=lambda: RiskConfig(max_submit_rate=None, max_short_exposure=None))
    breakers: BreakersConfig = field(default_factory=lambda: BreakersConfig(
        daily_loss=None, drawdown=None, order_latency_seconds=None, correlation=None, consecutive_losses=None,
        volatility_spike=None, stale_seconds=None, max_clock_skew_seconds=None))
    phases: tuple[PhaseConfig, ...] = ()
    strategies: dict[str, StrategyRules] = field(default_factory=dict)


class RiskManager:
    def __init__(self, engine: Engine, rules: RiskRules) -> None:
        self.engine = engine
        self.rules = rules
        r, b = rules.risk, rules.breakers
        self.states = TradingStates()
        self.history = ReturnHistory(list(engine.instruments), int(r.sample_seconds * 1e9), r.window, r.min_samples)
        self.checks = PreTradeChecks(r, engine.instruments, self.history)
        self.trips = RoundTrips()
        self.brackets = Brackets(engine)
        self.health = MarketHealth(None if b.stale_seconds is None else int(b.stale_seconds * 1e9),
                                   None if b.max_clock_skew_seconds is None else int(b.max_clock_skew_seconds * 1e9),
                                   int(b.healthy_after_seconds * 1e9))
        self.daily_loss = None if b.daily_loss is None else DailyLoss(b.daily_loss, b.daily_loss_cooldown_hours)
        self.drawdown = None if b.drawdown is None else Drawdown(b.drawdown, b.drawdown_cooldown_hours)
        self.latency = (None if b.order_latency_seconds is None
                        else OrderLatency(b.order_latency_seconds, b.latency_pause_hours))
        self.losses = (None if b.consecutive_losses is None
                       else ConsecutiveLosses(b.consecutive_losses, b.losses_cooldown_hours))
        self.correlation = None if b.correlation is None else CorrelationBreach(b.correlation)
        self.volatility = (None if b.volatility_spike is None else
                           VolatilitySpike(b.volatility_spike, b.volatility_short_samples, b.volatility_long_samples,
                                           b.volatility_pause_hours))
        self.phase_rules = {p.phase: p for p in rules.phases}
        self.phases: dict[str, int | None] = {name: s.phase for name, s in rules.strategies.items()}
        self.flattening: dict[Key, str] = {}   # positions being closed at market, with why
        self.denials = 0
        self.trip_count = 0
        self.changes = 0  # trading-state changes so far, so a watcher knows when to look again
        self.listeners: list[Callable[[StateChange], None]] = []
        # the return history costs a sample per timestamp: keep it only when something reads it
        self._sampling = any(x is not None for x in (r.correlation_limit, r.var_limit, self.correlation,
                                                      self.volatility))
        self._eval_ns = int(b.evaluate_seconds * 1e9)
        self.next_evaluation = 0
        self._batch_ts = 0
        self._unhealthy: tuple[str, ...] = ()
        self._atr: dict[tuple[str, str], ATR] = {}
        for name, s in rules.strategies.items():
            if s.sizing.mode == "atr":
                strategy = engine.strategies.get(name)
                for symbol in (strategy.symbols if strategy else ()):
                    self._atr.setdefault((symbol, strategy.timeframe), ATR(s.sizing.atr_period))

    # ---- the engine's hooks ---------------------------------------------------------------------

    def on_market(self, event: MarketEvent, ts: int) -> None:
        """Before strategies see an event (stamped ts): close out the last timestamp, note data health, watch
        trailing stops. The engine calls evaluate() after applying the event, once next_evaluation is due."""
        if ts != self._batch_ts:
            if self._batch_ts:
                self._timestamp_done(self._batch_ts)
            self._batch_ts = ts
        self.health.observe(event, self.engine.clock.now_ns())
        trailing = self.brackets.trailing
        if trailing and event.symbol in trailing:
            price = event.close if type(event) is Bar else event.price if type(event) is TradeTick else (
                event.mid if event.bids and event.asks else None)
            if price is not None:
                self.brackets.on_price(event.symbol, price)

    def _timestamp_done(self, ts: int) -> None:
        """Every event stamped ts has been applied: sample returns and judge data health now, not halfway
        through a step (where a late step would make every symbol not yet updated look stale)."""
        if self._sampling and self.history.observe(ts, self.engine.account.marks):
            self._sampled(ts)
        health = self.health
        if health.problems or health.stale_ns is not None or self._unhealthy:
            self._check_health(ts)

    def on_bar(self, bar: Bar) -> None:
        atr = self._atr.get((bar.symbol, bar.timeframe))
        if atr is not None:
            atr.update(bar.high, bar.low, bar.close)

    def on_accepted(self, order: Order, latency_ns: int) -> None:
        if self.latency is not None:
            self.latency.observe(latency_ns)

    def on_fill(self, order: Order, fill: Fill) -> None:
        pnl = self.trips.on_fill(fill)
        if pnl is not None and self.losses is not None:
            trip = self.losses.on_trade(fill.strategy, pnl, fill.ts)
            if trip is not None:
                self._apply(trip, fill.ts)
        key = (order.strategy, order.symbol)
        if key in self.flattening and not self.engine.account.strategy_qty.get(key, 0.0):
            self.flattening.pop(key, None)
        self.brackets.resync(key)
        self.evaluate(fill.ts)

    # ---- sizing -----------------------------------------------------------------------------------

    def size_target(self, strategy: str, symbol: str, target: float,
                    stop: float | None) -> tuple[float | None, Denial | None]:
        """The strategy's target position after sizing and its phase's caps (same sign as asked).

        None means "leave the position as it is": the entry could not be sized (the denial says why).
        """
        held = self.engine.account.strategy_qty.get((strategy, symbol), 0.0)
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
        engine = self.engine
        price = engine.account.marks.get(symbol, 0.0)
        equity = engine.account.equity()
        if stop is None and rules.exits.stop_loss_pct is not None:
            stop = price * (1 - rules.exits.stop_loss_pct)
        distance = abs(price - stop) if stop is not None and price else None
        s = engine.strategies.get(strategy)
        atr = self._atr.get((symbol, s.timeframe)) if s is not None else None
        qty, denial = entry_qty(rules.sizing, requested, price, equity, distance,
                                atr.value if atr is not None else None, self.trips.of(strategy))
        if denial is not None or qty <= 0:
            return 0.0, denial
        phase = self.phase_rules.get(self.phases.get(strategy) or 0)
        if phase is None:
            return qty, None
        held = {sym: engine.account.strategy_qty.get((strategy, sym), 0.0) + engine.pending_qty((strategy, sym))
                for sym in (s.symbols if s is not None else [symbol])}
        if phase.max_symbols is not None and not held.get(symbol) and sum(1 for q in held.values() if q) \
                >= phase.max_symbols:
            return 0.0, Denial("phase_symbols", phase.max_symbols, sum(1 for q in held.values() if q) + 1,
                               f"phase {phase.phase} allows {phase.max_symbols} symbol(s) at once")
        if distance:
            qty = min(qty, phase.risk_per_trade * equity / distance)
        if price > 0:
            others = sum(abs(q) * engine.account.marks.get(sym, 0.0) for sym, q in held.items() if sym != symbol)
            own = 0.0 if not adding else abs(held.get(symbol, 0.0)) * price
            room = max(0.0, phase.max_exposure * equity - others - own) / price
            if qty > room:
                qty = room
                if qty <= 0:
                    return 0.0, Denial("phase_exposure", phase.max_exposure, (others + own) / max(equity, 1e-9),
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
        return price if price is not None else self.engine.account.marks.get(key[1], 0.0)

    # ---- checks ------------------------------------------------------------------------------------

    def check(self, order: Order) -> Denial | None:
        """Every check an order must pass before the venue sees it, by its origin."""
        if order.origin == "flatten" or order.symbol not in self.engine.instruments:
            return None  # an unknown symbol is the venue's to reject
        key = (order.strategy, order.symbol)
        engine = self.engine
        held = engine.account.strategy_qty.get(key, 0.0)
        if order.origin == "exit":
            # a bracket child reduces what is held; its sibling may cover the same quantity (OCO)
            if self.states.effective(order.strategy).state is TradingState.EMERGENCY_STOPPED:
                return Denial("trading_state", None, None, "EMERGENCY_STOPPED: nothing trades until resume")
            if not is_reducing(held, held + order.side * order.qty):
                return Denial("reduce_only", abs(held), order.qty,
                              f"exit {order.side.name} {order.qty:g} would not reduce {order.strategy}'s "
                              f"{order.symbol} position of {held:+g}")
            return None
        before = held + engine.pending_qty(key)
        reduces = is_reducing(before, before + order.side * order.qty)
        restriction = self.states.effective(order.strategy)
        if restriction.state is not TradingState.ACTIVE and (
                not reduces or restriction.state is TradingState.EMERGENCY_STOPPED):
            return Denial("trading_state", None, None,
                          f"{restriction.state} ({restriction.source}: {restriction.cause}): "
                          + ("nothing trades until resume" if restriction.state is TradingState.EMERGENCY_STOPPED
                             else "only orders that reduce the position"))
        if order.reduce_only and not reduces:
            return Denial("reduce_only", abs(before), order.qty,
                          f"reduce-only {order.side.name} {order.qty:g} would not reduce {order.strategy}'s "
                          f"{order.symbol} position of {before:+g} (open orders included)")
        ts = order.created_ns
        denial = self.checks.throttle(ts)
        if denial is None:
            denial = self.checks.check(order.symbol, order.side, order.qty, self._price(order), ts, self.exposure())
        return denial

    def submitted(self, order: Order) -> None:
        """An order passed and went out: count it, and let the bracket follow the expected position."""
        if order.origin == "strategy":
            key = (order.strategy, order.symbol)
            before = self.engine.account.strategy_qty.get(key, 0.0) + self.engine.pending_qty(key) \
                - order.side * order.qty
            self.checks.submitted(order.created_ns, not is_reducing(before, before + order.side * order.qty))
            self.brackets.resync(key)

    def exits_allowed(self, key: Key) -> bool:
        return key not in self.flattening and \
            self.states.effective(key[0]).state is not TradingState.EMERGENCY_STOPPED

    def exposure(self) -> Exposure:
        engine = self.engine
        account = engine.account
        net = {s: p.qty for s, p in account.positions.items() if p.qty}
        reserved = 0.0
        for order in engine.open_orders():
            if order.origin == "exit":
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
        return self.engine.account.marks.get(order.symbol, 0.0)

    # ---- breakers ------------------------------------------------------------------------------------

    def evaluate(self, ts: int) -> None:
        """Expire timed states, re-measure the equity and latency breakers, apply trips, keep flattening."""
        self.next_evaluation = ts + self._eval_ns
        states = self.states
        if states.next_expiry is not None and ts >= states.next_expiry:
            for change in states.expire(ts):
                self._emit(change)
        forced = states.sources(PORTFOLIO)
        trips = []
        if self.daily_loss is not None or self.drawdown is not None:
            equity = self.engine.account.equity()
            if self.daily_loss is not None:
                trips.append(self.daily_loss.evaluate(ts, equity, DailyLoss.name in forced))
            if self.drawdown is not None:
                trips.append(self.drawdown.evaluate(ts, equity, Drawdown.name in forced))
        if self.latency is not None:
            trips.append(self.latency.evaluate(ts, OrderLatency.name in forced))
        for trip in trips:
            if trip is not None:
                self._apply(trip, ts)
        if self.flattening:
            self._flatten_more()

    def _sampled(self, ts: int) -> None:
        """A new return sample: the breakers that read the return history."""
        trips = []
        if self.correlation is not None:
            account = self.engine.account
            held = [(s, p) for s, p in account.positions.items() if p.qty]
            if len(held) > 1:
                exposures = {s: p.qty * account.marks.get(s, p.avg_price) for s, p in held}
                trips.append(self.correlation.evaluate(exposures, self.history))
            else:
                self.correlation.worst, self.correlation.pair = 0.0, None  # one position cannot be correlated
        if self.volatility is not None:
            trips.append(self.volatility.evaluate(ts, self.history, VolatilitySpike.name in
                                                  self.states.sources(PORTFOLIO)))
        for trip in trips:
            if trip is not None:
                self._apply(trip, ts)

    def _check_health(self, ts: int) -> None:
        bad = self.health.unhealthy(ts)
        if bad:
            # a new restriction only when the set of unhealthy symbols changes, not on every evaluation
            if tuple(sorted(bad)) != self._unhealthy:
                self._unhealthy = tuple(sorted(bad))
                cause = "; ".join(f"{s}: {why}" for s, why in sorted(bad.items()))
                self._emit(self.states.restrict(PORTFOLIO, Restriction(TradingState.REDUCING, MARKET_DATA, cause, ts)))
        elif self._unhealthy:
            self._unhealthy = ()
            self._emit(self.states.lift(PORTFOLIO, MARKET_DATA, "market data healthy again", ts))

    def _apply(self, trip: Trip, ts: int) -> None:
        self.trip_count += 1
        if trip.state is not None:
            change = self.states.restrict(trip.scope, Restriction(trip.state, trip.breaker, trip.cause, ts,
                                                                  trip.until_ns))
        else:
            state = self.states.state(trip.scope)
            change = StateChange(trip.scope, state, state, trip.breaker, trip.cause, ts)
        self._emit(change)
        if trip.close_all or trip.close_symbols:
            self.flatten(trip.close_symbols or None, f"{trip.breaker}: {trip.cause}")

    def _emit(self, change: StateChange | None) -> None:
        if change is None:
            return
        self.changes += 1
        engine = self.engine
        level = "INFO" if change.state is TradingState.ACTIVE else "WARN"
        engine.log_event(level, "trading " + change.line())
        for listener in self.listeners:
            listener(change)
        if engine.journal is not None:
            engine.journal.trading_state(change)
        if change.state in CANCELS_ENTRIES:
            self.cancel_entries(None if change.scope == PORTFOLIO else change.scope, f"{change.state}: {change.cause}")

    # ---- actions -----------------------------------------------------------------------------------

    def cancel_entries(self, strategy: str | None, why: str) -> int:
        """Cancel resting strategy orders that would open or add to a position."""
        engine = self.engine
        count = 0
        for order in engine.open_orders():
            if order.origin != "strategy" or order.reduce_only or (strategy is not None and order.strategy != strategy):
                continue
            held = engine.account.strategy_qty.get((order.strategy, order.symbol), 0.0)
            if order.side * held >= 0 and engine.cancel_order(order.client_id, why):
                count += 1
        return count

    def flatten(self, symbols: tuple[str, ...] | None, why: str) -> int:
        """Close positions at market (every strategy's, or those in symbols), canceling their orders first."""
        engine = self.engine
        keys = [k for k, q in engine.account.strategy_qty.items() if q and (symbols is None or k[1] in symbols)]
        for order in engine.open_orders():
            if symbols is None or order.symbol in symbols:
                engine.cancel_order(order.client_id, why)
        for key in keys:
            self.flattening[key] = why
            self.brackets.drop(key)
        self._flatten_more()
        return len(keys)

    def _flatten_more(self) -> None:
        """Send a market order for what each flattening position still holds, unless one is on its way."""
        engine = self.engine
        in_flight = {(o.strategy, o.symbol) for o in engine.open_orders() if o.origin == "flatten"}
        for key, why in list(self.flattening.items()):
            held = engine.account.strategy_qty.get(key, 0.0)
            qty = engine.instruments[key[1]].floor_qty(abs(held))
            if qty <= 0:
                self.flattening.pop(key, None)  # a fill inside this loop may have removed it already
                continue
            if key not in in_flight:
                engine.submit_order(key[0], key[1], OrderSide.SELL if held > 0 else OrderSide.BUY, qty,
                                    origin="flatten", note=why)

    def emergency_stop(self, reason: str, ts: int) -> str:
        """Cancel everything, close everything at market, latch EMERGENCY_STOPPED. Safe to repeat."""
        cause = reason or "operator emergency stop"
        engine = self.engine
        was_open = engine.open_orders()
        self._emit(self.states.restrict(PORTFOLIO, Restriction(TradingState.EMERGENCY_STOPPED, OPERATOR, cause, ts)))
        for order in engine.open_orders():
            engine.cancel_order(order.client_id, "emergency stop")
        canceled = sum(1 for o in was_open if o.status is OrderStatus.CANCELED)
        positions = self.flatten(None, "emergency stop")
        return f"EMERGENCY_STOPPED: canceled {canceled} open orders, closing {positions} positions at market"

    # ---- operator commands -------------------------------------------------------------------------

    def command(self, kind: str, args: dict[str, Any], reason: str, ts: int) -> tuple[bool, str]:
        """Apply an operator command; (False, why) when it is refused. Deterministic in ts, for replay."""
        strategy = args.get("strategy")
        if strategy is not None and strategy not in self.engine.strategies:
            return False, f"no strategy named {strategy!r} (strategies: {', '.join(self.engine.strategies)})"
        scope = strategy or PORTFOLIO
        if kind == "halt" or kind == "pause":
            state = TradingState.HALTED if kind == "halt" else TradingState.PAUSED
            change = self.states.restrict(scope, Restriction(state, OPERATOR, reason or f"operator {kind}", ts))
            self._emit(change)
            return True, change.line() if change else f"{scope} already {state}"
        if kind == "resume":
            if self.states.record(scope).state is TradingState.EMERGENCY_STOPPED and not reason.strip():
                return False, "refused: resuming from EMERGENCY_STOPPED needs a reason (--reason \"...\")"
            changes = self.states.clear(scope, reason or "operator resume", ts)
            for change in changes:
                self._emit(change)
            for key in [k for k in self.flattening if strategy is None or k[0] == strategy]:
                del self.flattening[key]
            if not changes:
                return True, f"{scope} was not halted ({self.states.state(scope)})"
            return True, f"{scope}: now {self.states.state(scope)}"
        if kind == "emergency-stop":
            return True, self.emergency_stop(reason, ts)
        if kind == "phase":
            phase = args.get("phase")
            if strategy is None or phase not in self.phase_rules:
                return False, (f"phase needs --strategy and a defined phase "
                               f"({', '.join(map(str, sorted(self.phase_rules))) or 'none defined'})")
            old = self.phases.get(strategy)
            self.phases[strategy] = phase
            self._emit(StateChange(strategy, self.states.state(strategy), self.states.state(strategy), "phase",
                                   f"risk phase {old} -> {phase}: {reason or 'operator'}", ts))
            return True, f"{strategy}: risk phase {old} -> {phase}"
        return False, f"unknown command {kind!r} (known: {', '.join(COMMANDS)})"

    # ---- the operator's view -------------------------------------------------------------------------

    def gauges(self) -> list[Gauge]:
        """Every breaker's distance to tripping, as of its last evaluation."""
        out = [b.gauge() for b in (self.daily_loss, self.drawdown, self.latency, self.correlation, self.volatility)
               if b is not None]
        if self.losses is not None:
            out += self.losses.gauges()
        health = self.health
        if health.stale_ns is not None and self._batch_ts:
            bad = health.unhealthy(self._batch_ts)
            out.append(Gauge("market_data", PORTFOLIO, health.staleness(self._batch_ts), 1.0,
                             "; ".join(f"{s}: {why}" for s, why in sorted(bad.items())) or "all symbols fresh"))
        return out

    def gauge(self, breaker: str, scope: str = PORTFOLIO) -> Gauge | None:
        return next((g for g in self.gauges() if (g.breaker, g.scope) == (breaker, scope)), None)

    def view(self) -> dict[str, Any]:
        """Plain values for the console, `paperdesk status` and the store."""
        warn = self.rules.breakers.warn_at
        scopes = [PORTFOLIO, *self.engine.strategies]
        return {
            "state": self.states.state(PORTFOLIO).value,
            "scopes": [{"scope": s, "state": r.state.value, "source": r.source, "cause": r.cause,
                        "since": r.since_ns, "until": r.until_ns}
                       for s in scopes if (r := self.states.record(s)).state is not TradingState.ACTIVE],
            "gauges": [{"breaker": g.breaker, "scope": g.scope, "value": g.value, "limit": g.limit,
                        "usage": g.usage, "warn": g.usage >= warn, "detail": g.detail}
                       for g in sorted(self.gauges(), key=lambda g: (g.breaker, g.scope))],
            "phases": {s: p for s, p in self.phases.items() if p is not None},
            "flattening": len(self.flattening),
            "denials": self.denials,
            "trips": self.trip_count,
        }
