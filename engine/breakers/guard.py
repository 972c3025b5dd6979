"""The trading guard: trading states, breaker trips, flattening and the emergency stop.

It measures the breakers in market time on the engine's thread, so a replay reproduces every trip.
It acts on orders only through the OrderActions it is given (the order manager), and hears about
fills and acknowledgements from the engine; it never reaches into risk or the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

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
    SEVERITY,
    Restriction,
    StateChange,
    TradingState,
    TradingStates,
)
from engine.clock import Clock
from engine.config import BreakersConfig
from engine.model.event_log import EventLevel
from engine.model.instrument import Instrument
from engine.model.market import MarketEvent
from engine.model.order import Order, OrderOrigin, OrderSide, OrderStatus
from engine.portfolio.account import Account
from engine.portfolio.returns import ReturnHistory

Key = tuple[str, str]
STORE = "store"  # the source of the restriction while the database refuses writes


class OrderActions(Protocol):
    """What the guard does to orders: cancel them, close positions at market, take brackets off."""

    def open_orders(self) -> list[Order]: ...
    def cancel(self, client_id: str, reason: str = ...) -> bool: ...
    def flatten_order(self, key: Key, side: OrderSide, qty: float, why: str) -> Order: ...
    def drop_bracket(self, key: Key) -> None: ...


class StateJournal(Protocol):
    def trading_state(self, change: StateChange) -> None: ...


class TradingGuard:
    """Every scope's trading state, the breakers that move it, and the close-outs they order."""

    def __init__(self, clock: Clock, account: Account, instruments: dict[str, Instrument], config: BreakersConfig,
                 history: ReturnHistory, sampling: bool, orders: OrderActions,
                 log: Callable[[EventLevel, str], None]) -> None:
        b = config
        self.clock = clock
        self.account = account
        self.instruments = instruments
        self.config = config
        self.history = history
        self.orders = orders
        self.log = log
        self.journal: StateJournal | None = None
        self.states = TradingStates()
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
        self.flattening: dict[Key, str] = {}   # positions being closed at market, with why
        self._unclosable: dict[Key, float] = {}  # close-outs the venue refused, by the quantity that was refused
        # while a close-everything restriction stands (the emergency stop, a drawdown trip): its source and why. A
        # fill the venue made before it heard of the restriction (an order already there) is closed out too
        self._closing_all: tuple[str, str] | None = None
        self.trip_count = 0
        self.changes = 0  # trading-state changes so far, so a watcher knows when to look again
        self.listeners: list[Callable[[StateChange], None]] = []
        # the return history costs a sample per timestamp: keep it only when something reads it
        self._sampling = sampling
        self._eval_ns = int(b.evaluate_seconds * 1e9)
        self.next_evaluation = 0
        self._batch_ts = 0
        self._unhealthy: tuple[str, ...] = ()

    # ---- what the engine tells it -------------------------------------------------------------------

    def on_market(self, event: MarketEvent, ts: int) -> None:
        """Before strategies see an event (stamped ts): close out the last timestamp and note data health.
        The engine calls evaluate() after applying the event, once next_evaluation is due."""
        if ts != self._batch_ts:
            if self._batch_ts:
                self._timestamp_done(self._batch_ts)
            self._batch_ts = ts
        self.health.observe(event, self.clock.now_ns())

    def on_clock(self, ts: int) -> None:
        """Market time reached ts with no market event: judge data health on the clock, so a silent feed is
        noticed without waiting for data that may never come."""
        if self._batch_ts and ts > self._batch_ts:
            self._timestamp_done(self._batch_ts)
            self._batch_ts = 0
        health = self.health
        if health.problems or health.stale_ns is not None or self._unhealthy:
            self._check_health(ts)
        self.evaluate(ts)

    def _timestamp_done(self, ts: int) -> None:
        """Every event stamped ts has been applied: sample returns and judge data health now, not halfway
        through a step (where a late step would make every symbol not yet updated look stale)."""
        if self._sampling and self.history.observe(ts, self.account.marks):
            self._sampled(ts)
        health = self.health
        if health.problems or health.stale_ns is not None or self._unhealthy:
            self._check_health(ts)

    def on_accepted(self, latency_ns: int) -> None:
        if self.latency is not None:
            self.latency.observe(latency_ns)

    def on_fill(self, order: Order, closed_pnl: float | None, ts: int) -> None:
        """A fill was booked (closed_pnl: the round trip it closed, if any)."""
        if closed_pnl is not None and self.losses is not None:
            trip = self.losses.on_trade(order.strategy, closed_pnl, ts)
            if trip is not None:
                self._apply(trip, ts)
        key = (order.strategy, order.symbol)
        held = self.account.strategy_qty.get(key, 0.0)
        if key in self.flattening and not held:
            self.flattening.pop(key, None)
        elif held and self._closing_all is not None and key not in self.flattening:
            self.flattening[key] = self._closing_all[1]
            self.orders.drop_bracket(key)

    # ---- what others ask ----------------------------------------------------------------------------

    def effective(self, strategy: str) -> Restriction:
        """The restriction that binds a strategy now."""
        return self.states.effective(strategy)

    def exits_allowed(self, key: Key) -> bool:
        return key not in self.flattening and \
            self.states.effective(key[0]).state is not TradingState.EMERGENCY_STOPPED

    # ---- breakers -----------------------------------------------------------------------------------

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
            equity = self.account.equity()
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
            account = self.account
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
            why = f"{trip.breaker}: {trip.cause}"
            if trip.close_all and trip.state is not None:
                self._closing_all = (trip.breaker, why)
            self.flatten(trip.close_symbols or None, why)

    def _emit(self, change: StateChange | None) -> None:
        if change is None:
            return
        self.changes += 1
        closing = self._closing_all
        if closing is not None and change.scope == PORTFOLIO and closing[0] not in self.states.sources(PORTFOLIO):
            self._closing_all = None  # the restriction that closes everything has been lifted
        level = EventLevel.INFO if change.state is TradingState.ACTIVE else EventLevel.WARN
        self.log(level, "trading " + change.line())
        for listener in self.listeners:
            listener(change)
        if self.journal is not None:
            self.journal.trading_state(change)
        if change.state in CANCELS_ENTRIES:
            self.cancel_entries(None if change.scope == PORTFOLIO else change.scope, f"{change.state}: {change.cause}")

    # ---- actions ------------------------------------------------------------------------------------

    def cancel_entries(self, strategy: str | None, why: str) -> int:
        """Cancel resting strategy orders that would open or add to a position."""
        count = 0
        for order in self.orders.open_orders():
            if order.origin is not OrderOrigin.STRATEGY or order.reduce_only or (
                    strategy is not None and order.strategy != strategy):
                continue
            held = self.account.strategy_qty.get((order.strategy, order.symbol), 0.0)
            if order.side * held >= 0 and self.orders.cancel(order.client_id, why):
                count += 1
        return count

    def flatten(self, symbols: tuple[str, ...] | None, why: str) -> int:
        """Close positions at market (every strategy's, or those in symbols), canceling their orders first."""
        keys = [k for k, q in self.account.strategy_qty.items() if q and (symbols is None or k[1] in symbols)]
        for order in self.orders.open_orders():
            if symbols is None or order.symbol in symbols:
                self.orders.cancel(order.client_id, why)
        for key in keys:
            self.flattening[key] = why
            self.orders.drop_bracket(key)
        self._flatten_more()
        return len(keys)

    def _flatten_more(self) -> None:
        """Send a market order for what each flattening position still holds, unless one is on its way."""
        in_flight = {(o.strategy, o.symbol) for o in self.orders.open_orders() if o.origin is OrderOrigin.FLATTEN}
        for key, why in list(self.flattening.items()):
            held = self.account.strategy_qty.get(key, 0.0)
            qty = self.instruments[key[1]].floor_qty(abs(held))
            if qty <= 0:
                self.flattening.pop(key, None)  # a fill may have removed it already
                continue
            if key not in in_flight and self._unclosable.get(key) != held:
                self.orders.flatten_order(key, OrderSide.SELL if held > 0 else OrderSide.BUY, qty, why)

    def close_out_refused(self, order: Order, reason: str) -> None:
        """The venue refused a close-out: resending the same order every evaluation would only flood the log. It is
        tried again when the position changes; until then the operator is told it is still open."""
        key = (order.strategy, order.symbol)
        held = self.account.strategy_qty.get(key, 0.0)
        if self._unclosable.get(key) != held:
            self._unclosable[key] = held
            self.log(EventLevel.ERROR, f"cannot close {order.strategy}'s {order.symbol} position of {held:+g} at "
                                       f"market: the venue refused ({reason}); it stays open until closed by hand "
                                       "or the position changes")

    def emergency_stop(self, reason: str, ts: int) -> str:
        """Cancel everything, close everything at market, latch EMERGENCY_STOPPED. Safe to repeat."""
        cause = reason or "operator emergency stop"
        was_open = self.orders.open_orders()
        self._closing_all = (OPERATOR, "emergency stop")
        self._emit(self.states.restrict(PORTFOLIO, Restriction(TradingState.EMERGENCY_STOPPED, OPERATOR, cause, ts)))
        for order in self.orders.open_orders():
            self.orders.cancel(order.client_id, "emergency stop")
        canceled = sum(1 for o in was_open if o.status in (OrderStatus.CANCELED, OrderStatus.PENDING_CANCEL))
        positions = self.flatten(None, "emergency stop")
        return f"EMERGENCY_STOPPED: canceled {canceled} open orders, closing {positions} positions at market"

    def restrict_by_operator(self, scope: str, state: TradingState, cause: str, ts: int) -> tuple[bool, str]:
        """The operator's halt or pause of scope. It may only tighten: never replace the emergency-stop latch or
        a stricter operator state (resume first)."""
        if self.latched(scope):
            return False, (f"refused: {scope} is EMERGENCY_STOPPED and stays so until `resume --reason`; "
                           f"{state} would not tighten it")
        own = self.states.sources(scope).get(OPERATOR)
        if own is not None and SEVERITY[own.state] > SEVERITY[state]:
            return False, (f"refused: {scope} is {own.state} by the operator; {state} would loosen it "
                           "(resume first)")
        change = self.states.restrict(scope, Restriction(state, OPERATOR, cause, ts))
        self._emit(change)
        return True, change.line() if change else f"{scope} already {state}"

    def latched(self, scope: str) -> bool:
        """scope (or, for a strategy, the portfolio above it) carries the emergency-stop latch."""
        def stopped(s: str) -> bool:
            own = self.states.sources(s).get(OPERATOR)
            return own is not None and own.state is TradingState.EMERGENCY_STOPPED
        return stopped(scope) or (scope != PORTFOLIO and stopped(PORTFOLIO))

    def resume(self, scope: str, reason: str, ts: int) -> tuple[bool, str]:
        """Lift every restriction on scope but market-data health; the emergency stop needs a reason."""
        own = self.states.sources(scope).get(OPERATOR)
        if own is not None and own.state is TradingState.EMERGENCY_STOPPED and not reason.strip():
            return False, "refused: resuming from EMERGENCY_STOPPED needs a reason (--reason \"...\")"
        changes = self.states.clear(scope, reason or "operator resume", ts)
        for change in changes:
            self._emit(change)
        if not self.latched(scope):  # under a standing emergency stop, its close-outs go on
            for key in [k for k in self.flattening if scope == PORTFOLIO or k[0] == scope]:
                del self.flattening[key]
        binding = self.states.effective(scope) if scope != PORTFOLIO else self.states.record(PORTFOLIO)
        still = "" if binding.state is TradingState.ACTIVE else f"; it stays {binding.state} ({binding.source}: " \
                                                                 f"{binding.cause})"
        if scope == PORTFOLIO:  # the portfolio's resume leaves each strategy's own states: say which still bind
            strategies = [f"{s} {r.state} ({r.source}: {r.cause})" for s, r in self.states.restricted()
                          if s != PORTFOLIO]
            if strategies:
                still += (f"; strategies still restricted on their own: {', '.join(strategies)} "
                          "(resume --strategy NAME)")
        if not changes:
            return True, f"{scope} was not halted ({self.states.state(scope)}){still}"
        return True, f"{scope}: now {self.states.state(scope)}{still}"

    def store_unwritable(self, cause: str | None, ts: int) -> None:
        """The database refused a commit (cause) or takes commits again (None). While it fails nothing opens a
        position: the portfolio is REDUCING from source STORE (an operator resume lifts it only until the next failed
        commit). A live-only fact: a replay never sees the store fail, so the journal keeps it out of the numbered
        trading-state changes a replay recomputes."""
        if cause is not None:
            self._emit(self.states.restrict(PORTFOLIO, Restriction(TradingState.REDUCING, STORE, cause, ts)))
        else:
            self._emit(self.states.lift(PORTFOLIO, STORE, "the database takes writes again", ts))

    def note(self, change: StateChange) -> None:
        """A state-line for something that is not a restriction (a risk phase change)."""
        self._emit(change)

    # ---- the operator's view ------------------------------------------------------------------------

    def gauges(self) -> list[Gauge]:
        """Every breaker's distance to tripping, as of its last evaluation."""
        out = [b.gauge() for b in (self.daily_loss, self.drawdown, self.latency, self.correlation, self.volatility)
               if b is not None]
        if self.losses is not None:
            out += self.losses.gauges()
        health = self.health
        now = self._batch_ts or self.clock.now_ns()
        if health.stale_ns is not None and health.last_ts:
            bad = health.unhealthy(now)
            out.append(Gauge("market_data", PORTFOLIO, health.staleness(now), 1.0,
                             "; ".join(f"{s}: {why}" for s, why in sorted(bad.items())) or "all symbols fresh"))
        return out

    def gauge(self, breaker: str, scope: str = PORTFOLIO) -> Gauge | None:
        return next((g for g in self.gauges() if (g.breaker, g.scope) == (breaker, scope)), None)

    def view(self, scopes: list[str]) -> dict[str, Any]:
        """Plain values for the console, `paperdesk status` and the store."""
        warn = self.config.warn_at
        return {
            "state": self.states.state(PORTFOLIO).value,
            "scopes": [{"scope": s, "state": r.state.value, "source": r.source, "cause": r.cause,
                        "since": r.since_ns, "until": r.until_ns}
                       for s in [PORTFOLIO, *scopes] if (r := self.states.record(s)).state is not TradingState.ACTIVE],
            "gauges": [{"breaker": g.breaker, "scope": g.scope, "value": g.value, "limit": g.limit,
                        "usage": g.usage, "warn": g.usage >= warn, "detail": g.detail}
                       for g in sorted(self.gauges(), key=lambda g: (g.breaker, g.scope))],
            "flattening": len(self.flattening),
            "trips": self.trip_count,
        }
