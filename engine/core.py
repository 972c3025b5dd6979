"""The event-driven core shared by paper trading and backtesting.

One market event in; decisions, orders and fills out. Nothing here knows whether the clock is
wall time or replayed time, which is what makes a replay of a paper session reproduce it.

The rooms it wires together (no one of them imports another's concrete class):
- the broker (engine/brokers/): the venue, behind the Broker protocol; the simulated one by default;
- the order manager (engine/execution/order_manager.py): orders, client ids, pending quantities, brackets;
- risk (engine/risk/manager.py): sizing and pre-trade checks, returning typed denials;
- the trading guard (engine/breakers/guard.py): trading states, breakers, flattening, the emergency stop;
- operator commands (engine/commands.py).
Venue events are queued by the broker and drained here after each market event and each command,
so every callback happens in the same order at any latency.
"""

from __future__ import annotations

import logging
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from engine.breakers.breakers import (
    ConsecutiveLosses,
    CorrelationBreach,
    DailyLoss,
    Drawdown,
    OrderLatency,
    VolatilitySpike,
)
from engine.breakers.guard import TradingGuard
from engine.breakers.trading_state import PORTFOLIO, StateChange, TradingState
from engine.brokers.broker import Broker
from engine.brokers.paper import PaperBroker
from engine.clock import Clock, monotonic_s
from engine.commands import apply_command
from engine.data.bars import BarAggregator, BarBuilder
from engine.execution.fill_model import FillModel
from engine.execution.order_manager import OrderManager
from engine.model.decision import Decision, Signal, engine_exit_reason
from engine.model.event_log import EventLevel
from engine.model.fill import Fill
from engine.model.instrument import Instrument
from engine.model.market import Bar, BookSnapshot, Heartbeat, MarketEvent, TradeTick
from engine.model.order import Denial, DenialRule, Order, OrderOrigin, OrderSide, OrderType, TimeInForce
from engine.model.venue_event import VenueEvent, VenueEventKind
from engine.portfolio.account import Account
from engine.portfolio.returns import ReturnHistory
from engine.retention import Forgotten
from engine.risk.checks import is_reducing
from engine.risk.manager import RiskManager, RiskRules, Subscription
from engine.strategy.base import OpenOrder, Strategy, StrategyStatus
from engine.strategy.port import StrategyPort

log = logging.getLogger("paperdesk.engine")

WARMUP_MARK = "warm-up, not traded: "  # the start of every decision made on history from before the session

FillListener = Callable[[Fill], None]
K = VenueEventKind
BREAKERS = frozenset(b.name for b in (DailyLoss, Drawdown, OrderLatency, ConsecutiveLosses, CorrelationBreach,
                                      VolatilitySpike))


class Journal(Protocol):
    """Receives everything the engine does, in order, for persistence. Must not block: it only queues."""

    def market(self, event: MarketEvent) -> None: ...
    def decision(self, decision: Decision, order: Order | None, denial: Denial | None = None) -> None: ...
    def order(self, order: Order) -> None: ...
    def fill(self, fill: Fill) -> None: ...
    def strategy(self, strategy: Strategy) -> None: ...
    def trading_state(self, change: StateChange) -> None: ...


def _close_out_origin(why: str) -> str:
    """A close-out's origin from what the guard or a trailing stop said when ordering it."""
    head = why.partition(":")[0].strip()
    if head == "trailing stop":
        return head
    if head == "emergency stop":
        return "emergency stop close"
    if head in BREAKERS:
        return f"breaker {head} close"
    return "operator flatten"


class Engine:
    """Routes market events to the venue and the strategies, intents through risk to orders, and venue
    events back to the order manager, the account, the guard and the strategies.

    With no broker given it trades on the simulated venue (PaperBroker with fill_model), fed the same
    events the strategies see, so every fill is simulated against exactly that data; a given broker
    brings its own fills, and fill_model is not used.
    """

    def __init__(self, clock: Clock, instruments: Iterable[Instrument], starting_cash: float,
                 strategies: Iterable[Strategy] = (), fill_model: FillModel | None = None,
                 order_id_prefix: str = "O", risk_rules: RiskRules | None = None,
                 broker: Broker | None = None) -> None:
        self.clock = clock
        self.instruments = {i.symbol: i for i in instruments}
        self.account = Account(starting_cash)
        self.broker: Broker = broker if broker is not None else PaperBroker(
            clock, self.instruments, fill_model or FillModel(), starting_cash)
        self.strategies: dict[str, Strategy] = {}
        self.decisions: list[Decision] = []
        self.fills: list[Fill] = []
        self.equity_curve: list[tuple[int, float]] = []
        self.forgotten = Forgotten()  # how much of those (and of the orders) a saved session no longer holds
        self.recording: list[MarketEvent] | None = None  # set to a list to record what the engine saw
        # operator-facing log lines and each venue report applied (the order flow), numbered in one sequence so a
        # watcher of these bounded logs knows which entries are new
        self.log_seq = 0
        self.events: deque[tuple[int, str, str]] = deque(maxlen=500)  # (ts, level, message)
        self.event_seqs: deque[int] = deque(maxlen=500)  # each line's number in that sequence
        self.order_flow: deque[tuple[int, VenueEvent]] = deque(maxlen=1000)
        self.books: dict[str, BookSnapshot] = {}  # the latest book per symbol, for the market watch
        self.last_trades: dict[str, TradeTick] = {}
        self.markers: list[tuple[int, str]] = []  # portfolio halts and emergency stops, for the equity chart
        self.fill_listeners: list[FillListener] = []
        self._journal: Journal | None = None
        self._bar_subs: dict[tuple[str, str], list[Strategy]] = {}
        self._tick_subs: dict[str, list[Strategy]] = {}
        self._builders: dict[str, list[BarBuilder]] = {}
        self._aggregators: dict[str, list[BarAggregator]] = {}  # higher timeframes built from a data source's bars
        # a paper session times strategy callbacks (a replay never does: the pauses it caused are saved commands)
        self.budget_s: float | None = None
        self.overruns: list[tuple[str, str, float]] = []  # (strategy, callback, seconds) over the budget
        self._busy = 0  # > 0 while a market event or command is applied: venue events are drained at its end
        self._warming = False  # strategies are seeing history from before the session: nothing they intend trades
        # False for a session saved before engine-made exits were decisions: its replay must number decisions as it did
        self.records_exits = True
        for strategy in strategies:
            self._subscribe(strategy)
        # without rules nothing is limited or tripped; trading states and the emergency stop still work
        rules = risk_rules or RiskRules()
        r = rules.risk
        self.history = ReturnHistory(list(self.instruments), int(r.sample_seconds * 1e9), r.window, r.min_samples)
        self.oms = OrderManager(clock, self.broker, self, self.log_event, self.account.strategy_qty,
                                self.instruments, self, order_id_prefix)
        self.orders: dict[str, Order] = self.oms.orders
        b = rules.breakers
        # the return history costs a sample per timestamp: kept only when a check or a breaker reads it
        sampling = any(x is not None for x in (r.correlation_limit, r.var_limit, b.correlation, b.volatility_spike))
        self.guard = TradingGuard(clock, self.account, self.instruments, b, self.history, sampling, self.oms,
                                  self.log_event)
        self.guard.listeners.append(self._mark_state)
        self.risk = RiskManager(rules, self.account, self.instruments,
                                {s.name: Subscription(tuple(s.symbols), s.timeframe) for s in self.strategies.values()},
                                self.history, self.guard, self.oms)
        # bound once: read on every market event
        self._venue_events = self.broker.events
        self._advance = self.broker.advance
        self._trailing = self.oms.brackets.trailing
        self._risk_bars = self.risk.wants_bars
        for strategy in self.strategies.values():
            try:
                strategy.attach(self._port(strategy))
            except Exception as exc:  # its on_start raised: FAILED before its first bar, the others trade on
                self._fail(strategy, exc)

    @property
    def journal(self) -> Journal | None:
        return self._journal

    @journal.setter
    def journal(self, journal: Journal | None) -> None:
        self._journal = journal
        self.oms.journal = journal
        self.guard.journal = journal

    # ---- setup ------------------------------------------------------------------------------

    def _subscribe(self, strategy: Strategy) -> None:
        if strategy.name in self.strategies:
            raise ValueError(f"two strategies are named {strategy.name!r}; names must be unique")
        for symbol in strategy.symbols:
            if symbol not in self.instruments:
                raise ValueError(f"strategy {strategy.name!r} trades {symbol!r}, which is not a configured "
                                 f"instrument ({', '.join(self.instruments)})")
        self.strategies[strategy.name] = strategy
        # subscribe only to what the strategy handles, so a tick strategy logs no empty bar decisions
        wants_bars = type(strategy).on_bar is not Strategy.on_bar
        wants_ticks = type(strategy).on_tick is not Strategy.on_tick
        for symbol in strategy.symbols:
            if wants_ticks:
                self._tick_subs.setdefault(symbol, []).append(strategy)
            if not wants_bars:
                continue
            for timeframe in strategy.timeframes:
                self._bar_subs.setdefault((symbol, timeframe), []).append(strategy)
                builders = self._builders.setdefault(symbol, [])
                if all(b.timeframe != timeframe for b in builders):
                    builders.append(BarBuilder(symbol, timeframe))
                    aggregators = self._aggregators.setdefault(symbol, [])
                    aggregators.append(BarAggregator(symbol, timeframe))
                    # bars that close together go out lower timeframe first, in paper and in a backtest alike
                    builders.sort(key=lambda b: b.period)
                    aggregators.sort(key=lambda a: a.period)

    def _port(self, strategy: Strategy) -> StrategyPort:
        """The documented API bound to strategy: what it asks in another's name is answered for itself."""
        name = strategy.name
        account, oms, states = self.account, self.oms, self.guard.states

        def open_orders(_: str) -> list[OpenOrder]:
            return [OpenOrder(o.client_id, o.symbol, o.side, o.type, o.qty, o.filled_qty, o.price, o.stop_price,
                              o.status.value) for o in oms.open_orders() if o.strategy == name]

        def cancel(_: str, client_id: str, reason: str) -> bool:
            order = oms.orders.get(client_id)
            return order is not None and order.strategy == name and self.cancel_order(client_id, reason)

        return StrategyPort(
            now_ns=self.clock.now_ns,
            strategy_position=lambda _, symbol: account.strategy_qty.get((name, symbol), 0.0),
            equity=account.equity,
            trading_state=lambda _: states.effective(name).state.value,
            open_orders=open_orders, cancel=cancel,
            decide=lambda _, decision: self.decide(strategy, decision),
            intend_target=lambda _, decision, *exits: self.intend_target(strategy, decision, *exits),
            intend_order=lambda _, decision, *rest: self.intend_order(strategy, decision, *rest))

    # ---- market data ----------------------------------------------------------------------

    def process(self, event: MarketEvent) -> None:
        """Handle one market event of any kind, then apply what the venue reported."""
        kind = type(event)
        ts = event.end if kind is Bar else event.ts  # type: ignore[union-attr]
        self._busy += 1
        try:
            self._advance(ts)  # orders that arrived before ts meet the market as it stood then
            if self._venue_events:
                self._drain()
            warmup = kind is Bar and event.warmup  # type: ignore[union-attr]
            if self.recording is not None and not warmup:  # a recording holds what the session traded on
                self.recording.append(event)
            if self._journal is not None:
                self._journal.market(event)
            guard = self.guard
            if kind is Heartbeat:
                guard.on_clock(ts)
            elif warmup:
                self._warm_up(event)  # type: ignore[arg-type]
            else:
                guard.on_market(event, ts)
                trailing = self._trailing
                if trailing and event.symbol in trailing:
                    self._watch_trailing(event)
                if kind is Bar:
                    self.on_bar(event)  # type: ignore[arg-type]
                elif kind is TradeTick:
                    self.on_trade(event)  # type: ignore[arg-type]
                else:
                    self.on_book(event)  # type: ignore[arg-type]
                if self._venue_events:
                    self._drain()
                if ts >= guard.next_evaluation:  # breakers re-measure once the event is applied
                    guard.evaluate(ts)
            if self._venue_events:
                self._drain()
        finally:
            self._busy -= 1

    def _watch_trailing(self, event: MarketEvent) -> None:
        if type(event) is Bar:
            price: float | None = event.close
        elif type(event) is TradeTick:
            price = event.price
        elif type(event) is BookSnapshot:
            price = event.mid if event.bids and event.asks else None
        else:
            price = None
        if price is not None:
            self.oms.brackets.on_price(event.symbol, price)

    def on_book(self, book: BookSnapshot) -> None:
        self.broker.on_book(book)
        self.books[book.symbol] = book
        if book.bids and book.asks:
            self.account.marks[book.symbol] = book.mid

    def on_trade(self, tick: TradeTick) -> None:
        self.broker.on_trade(tick)
        self.last_trades[tick.symbol] = tick
        if self._venue_events:
            self._drain()  # a resting order's fill lands before strategies see the trade that filled it
        for builder in self._builders.get(tick.symbol, ()):
            bar = builder.update(tick)
            if bar is not None:
                self._dispatch_bar(bar)
        for strategy in self._tick_subs.get(tick.symbol, ()):
            strategy._ts = tick.ts
            started = monotonic_s() if self.budget_s is not None else 0.0
            try:
                strategy.on_tick(tick)
            except Exception as exc:  # one strategy's bug must not stop the others
                self._fail(strategy, exc)
            if self.budget_s is not None:
                self._timed(strategy, "on_tick", started)

    def on_bar(self, bar: Bar) -> None:
        """A bar from a bar data source (a file): the venue fills at its prices, then strategies see it."""
        self.broker.on_bar(bar)
        if self._venue_events:
            self._drain()
        self.account.marks[bar.symbol] = bar.close
        aggregators = self._aggregators.get(bar.symbol)
        if aggregators and aggregators[0].period <= bar.end - bar.ts:
            # only timeframes longer than the data's are built from it: the others are never asked again
            period = bar.end - bar.ts
            aggregators = self._aggregators[bar.symbol] = [a for a in aggregators if a.period > period]
        if not aggregators:
            self._dispatch_bar(bar)
            return
        for aggregator in aggregators:
            for built in aggregator.overdue(bar):  # it ended before this bar began
                self._dispatch_bar(built)
        self._dispatch_bar(bar)
        for aggregator in aggregators:
            for built in aggregator.update(bar):
                self._dispatch_bar(built)

    def _dispatch_bar(self, bar: Bar) -> None:
        if self._risk_bars:
            self.risk.on_bar(bar)
        subs = self._bar_subs.get((bar.symbol, bar.timeframe))
        if not subs:
            return
        budget = self.budget_s
        for strategy in subs:
            strategy._ts = bar.end
            strategy.decided = False
            started = monotonic_s() if budget is not None else 0.0
            try:
                strategy.on_bar(bar)
            except Exception as exc:  # one strategy's bug must not stop the others
                self._fail(strategy, exc)
                continue
            if budget is not None:
                self._timed(strategy, "on_bar", started)
            if not strategy.decided and bar.timeframe == strategy.timeframe:  # decisions are made on the first
                self.decide(strategy, Decision(bar.end, strategy.name, bar.symbol, Signal.HOLD, 0.0,
                                               "no decision"))

    def _warm_up(self, bar: Bar) -> None:
        """A bar of history: strategies (and risk's sizing indicators) see it; the venue, the marks and the breakers
        do not, and what a strategy intends is recorded as a warm-up decision, never traded."""
        if self._risk_bars:
            self.risk.on_bar(bar)
        subs = self._bar_subs.get((bar.symbol, bar.timeframe))
        if not subs:
            return
        self._warming = True
        try:
            for strategy in subs:
                strategy._ts = bar.end
                strategy.decided = False
                try:
                    strategy.on_bar(bar)
                except Exception as exc:  # one strategy's bug must not stop the others
                    self._fail(strategy, exc)
                    continue
                if not strategy.decided and bar.timeframe == strategy.timeframe:
                    self.decide(strategy, Decision(bar.end, strategy.name, bar.symbol, Signal.HOLD, 0.0,
                                                   "no decision"))
        finally:
            self._warming = False

    def _warm_decision(self, decision: Decision) -> None:
        marked = replace(decision, reason=WARMUP_MARK + decision.reason)
        self.decisions.append(marked)
        if self._journal is not None:
            self._journal.decision(marked, None)

    def _timed(self, strategy: Strategy, callback: str, started: float) -> None:
        took = monotonic_s() - started
        if self.budget_s is not None and took > self.budget_s:
            self.overruns.append((strategy.name, callback, took))
            self.log_event(EventLevel.WARN, f"strategy {strategy.name} took {took * 1000:.0f} ms in {callback}, "
                                            f"over its {self.budget_s * 1000:g} ms budget")

    def _fail(self, strategy: Strategy, exc: Exception) -> None:
        strategy.status = StrategyStatus.FAILED
        strategy.error = f"{type(exc).__name__}: {exc}"
        # new lists, not in-place removal: a dispatch loop may be iterating the old ones right now
        for table in (self._bar_subs, self._tick_subs):
            for key, subs in table.items():
                if strategy in subs:
                    table[key] = [s for s in subs if s is not strategy]  # type: ignore[index]
        self.log_event(EventLevel.ERROR, f"strategy {strategy.name} FAILED and stopped: {strategy.error}")
        if self._journal is not None:
            self._journal.strategy(strategy)
        log.error("strategy %s failed:\n%s", strategy.name, "".join(traceback.format_exception(exc)))

    def mark_equity(self, ts: int) -> float:
        equity = self.account.equity()
        self.equity_curve.append((ts, equity))
        return equity

    # ---- venue events ---------------------------------------------------------------------------

    def _drain(self) -> None:
        """Apply every queued venue event in order (applying one may queue more: a bracket child, a close-out)."""
        events = self._venue_events
        apply = self.oms.apply
        while events:
            event = events.popleft()
            order = apply(event)
            if order is None:
                continue
            self.log_seq += 1
            self.order_flow.append((self.log_seq, event))
            kind = event.kind
            if kind is K.FILLED:
                assert event.fill is not None
                self._filled(order, event.fill)
            elif kind is K.ACCEPTED:
                self.guard.on_accepted(event.latency_ns)
            elif kind is K.REJECTED and order.origin is OrderOrigin.STRATEGY:
                self.oms.brackets.resync((order.strategy, order.symbol))  # a refused entry takes its bracket off
            elif kind is K.REJECTED and order.origin is OrderOrigin.FLATTEN:
                self.guard.close_out_refused(order, event.reason)

    def _filled(self, order: Order, fill: Fill) -> None:
        if order.origin is OrderOrigin.EXIT and order.filled_qty == fill.qty:  # a bracket child's first fill
            what = "bracket stop-loss" if order.type is OrderType.STOP else "bracket take-profit"
            self._engine_exit(order, fill.ts, what, f"{order.client_id} filled {fill.qty:g} at {fill.price:g}")
        self.account.apply_fill(fill)
        self.fills.append(fill)
        if self._journal is not None:
            self._journal.fill(fill)
            self._journal.order(order)
        for listener in self.fill_listeners:
            listener(fill)
        self.guard.on_fill(order, self.risk.on_fill(fill), fill.ts)
        self.oms.brackets.resync((order.strategy, order.symbol))
        self.guard.evaluate(fill.ts)
        strategy = self.strategies.get(order.strategy)
        if strategy is not None and strategy.status is StrategyStatus.RUNNING:
            strategy._ts = fill.ts  # what it decides on a fill is stamped with the fill's time
            started = monotonic_s() if self.budget_s is not None else 0.0
            try:
                strategy.on_fill(fill)
            except Exception as exc:  # one strategy's bug must not stop the others
                self._fail(strategy, exc)
            if self.budget_s is not None:
                self._timed(strategy, "on_fill", started)

    def _settle(self) -> None:
        """Outside a market event (a command, a test's direct intent), venue events are applied right away."""
        if not self._busy and self._venue_events:
            self._busy += 1  # a strategy's intent inside on_fill is drained by this loop, not by a nested one
            try:
                self._drain()
            finally:
                self._busy -= 1

    # ---- StrategyContext ------------------------------------------------------------------

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def strategy_position(self, strategy: str, symbol: str) -> float:
        return self.account.strategy_qty.get((strategy, symbol), 0.0)

    def decide(self, strategy: Strategy, decision: Decision) -> None:
        if self._warming:
            self._warm_decision(decision)
            return
        self.decisions.append(decision)
        if self._journal is not None:
            self._journal.decision(decision, None)

    def intend_target(self, strategy: Strategy, decision: Decision, stop_loss: float | None = None,
                      take_profit: float | None = None, trailing_stop: float | None = None) -> None:
        if self._warming:
            self._warm_decision(decision)
            return
        self.decisions.append(decision)
        key = (strategy.name, decision.symbol)
        assert decision.target is not None, "a target decision carries its target"
        target, denial = self.risk.size_target(strategy.name, decision.symbol, decision.target, stop_loss)
        held = self.account.strategy_qty.get(key, 0.0) + self.oms.pending_qty(key)
        if target is None:
            target = held
        delta = target - held
        qty = self.instruments[decision.symbol].floor_qty(abs(delta))
        order = None
        if qty > 0:
            side = OrderSide.BUY if delta > 0 else OrderSide.SELL
            if not is_reducing(held, target):
                self.oms.brackets.attach(key, self.risk.exit_spec(strategy.name, stop_loss, take_profit,
                                                                  trailing_stop))
            order = self.oms.submit(strategy.name, decision.symbol, side, qty)
            self._unbracket_if_denied(key, order)
        elif denial is not None:
            self._denied(decision, denial)
        if self._journal is not None:
            self._journal.decision(decision, order, denial if order is None else None)
        self._settle()

    def intend_order(self, strategy: Strategy, decision: Decision, side: OrderSide, qty: float,
                     order_type: OrderType, price: float | None, stop_price: float | None,
                     tif: TimeInForce, reduce_only: bool, stop_loss: float | None = None,
                     take_profit: float | None = None, trailing_stop: float | None = None) -> None:
        if self._warming:
            self._warm_decision(decision)
            return
        self.decisions.append(decision)
        key = (strategy.name, decision.symbol)
        held = self.account.strategy_qty.get(key, 0.0) + self.oms.pending_qty(key)
        denial = None
        order = None
        if not reduce_only and not is_reducing(held, held + side * qty):
            sized, denial = self.risk.size_entry(strategy.name, decision.symbol, qty, stop_loss)
            instrument = self.instruments[decision.symbol]
            qty = instrument.floor_qty(sized)
            if qty <= 0 and denial is None:
                denial = Denial(DenialRule.SIZING, instrument.lot_size, sized,
                                f"the sized entry {sized:g} is under one lot ({instrument.lot_size:g})")
            if qty > 0:
                self.oms.brackets.attach(key, self.risk.exit_spec(strategy.name, stop_loss, take_profit,
                                                                  trailing_stop))
        if qty > 0:
            order = self.oms.submit(strategy.name, decision.symbol, side, qty, order_type, price, stop_price, tif,
                                    reduce_only)
            self._unbracket_if_denied(key, order)
        elif denial is not None:
            self._denied(decision, denial)
        if self._journal is not None:
            self._journal.decision(decision, order, denial if order is None else None)
        self._settle()

    def _unbracket_if_denied(self, key: tuple[str, str], order: Order) -> None:
        """The bracket went on before the entry; a denied entry takes it off (a venue's rejection does on drain)."""
        if not order.is_open and order.filled_qty == 0:
            self.oms.brackets.resync(key)

    def _denied(self, decision: Decision, denial: Denial) -> None:
        self.risk.denials += 1
        self.log_event(EventLevel.WARN, f"{decision.strategy} {decision.signal} {decision.symbol} not sized: "
                                        f"{denial.line()}")

    # ---- the order manager's gate and the brackets' policy (risk and the guard answer) --------------

    def check(self, order: Order) -> Denial | None:
        """The order manager's gate: risk's checks (risk is built after the order manager it reads)."""
        return self.risk.check(order)

    def submitted(self, order: Order) -> None:
        """An order went out: risk counts it; a close-out the engine made is its strategy's decision."""
        self.risk.submitted(order)
        if order.origin is OrderOrigin.FLATTEN:
            self._engine_exit(order, order.created_ns, _close_out_origin(order.reason),
                              f"{order.client_id} {order.side.name} {order.qty:g} at market: {order.reason}")

    def _engine_exit(self, order: Order, ts: int, origin: str, detail: str) -> None:
        """Record an exit the engine ordered as a FLAT decision of the strategy whose position it closes, in paper and
        in a replay alike, so the behaviour score compares it as it compares the strategy's own."""
        if not self.records_exits:
            return
        held = self.account.strategy_qty.get((order.strategy, order.symbol), 0.0)
        decision = Decision(ts, order.strategy, order.symbol, Signal.FLAT, 1.0, engine_exit_reason(origin, detail),
                            target=held + order.side * order.qty)
        self.decisions.append(decision)
        if self._journal is not None:
            self._journal.decision(decision, order)

    def exits_allowed(self, key: tuple[str, str]) -> bool:
        """Brackets ask: may exits be placed for this position now (the guard says)."""
        return self.guard.exits_allowed(key)

    def entry_price(self, key: tuple[str, str]) -> float:
        """Brackets ask: where a position's percentages start (risk's round trips say)."""
        return self.risk.entry_price(key)

    # ---- orders and commands from outside a market event --------------------------------------------

    def submit_order(self, strategy: str, symbol: str, side: OrderSide, qty: float,
                     order_type: OrderType = OrderType.MARKET, price: float | None = None,
                     stop_price: float | None = None, tif: TimeInForce = TimeInForce.GTC,
                     reduce_only: bool = False, origin: OrderOrigin = OrderOrigin.STRATEGY, note: str = "") -> Order:
        """An order through risk to the venue, as a strategy's would go; what the venue reports is applied."""
        order = self.oms.submit(strategy, symbol, side, qty, order_type, price, stop_price, tif, reduce_only, origin,
                                note)
        self._settle()
        return order

    def cancel_order(self, client_id: str, reason: str = "canceled on request") -> bool:
        """Ask the venue to cancel; False if the order is unknown or no longer open."""
        ok = self.oms.cancel(client_id, reason)
        self._settle()
        return ok

    def open_orders(self) -> list[Order]:
        return self.oms.open_orders()

    def command(self, command: str, args: Mapping[str, Any], reason: str, ts: int) -> tuple[bool, str]:
        """An operator command (engine/commands.py), applied now; then what the venue reported is applied."""
        self._busy += 1
        try:
            result = apply_command(self.guard, self.risk, self.strategies, command, args, reason, ts)
        finally:
            self._busy -= 1
        self._settle()
        return result

    def risk_view(self) -> dict[str, Any]:
        """Trading states, breaker gauges, phases and counts, as plain values for the console, status and the store."""
        view = self.guard.view(list(self.strategies))
        view["phases"] = {s: p for s, p in self.risk.phases.items() if p is not None}
        view["denials"] = self.risk.denials
        return view

    @property
    def state_changes(self) -> int:
        """Trading-state changes so far, so a watcher knows when to look again."""
        return self.guard.changes

    def _mark_state(self, change: StateChange) -> None:
        if change.scope == PORTFOLIO and change.state in (TradingState.HALTED, TradingState.EMERGENCY_STOPPED):
            self.markers.append((change.ts, change.state.value))

    def log_event(self, level: EventLevel | str, message: str) -> None:
        """A line for the operator (console and headless), stamped with engine time."""
        self.log_seq += 1
        self.events.append((self.clock.now_ns(), str(level), message))
        self.event_seqs.append(self.log_seq)
