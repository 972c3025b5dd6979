"""The event-driven core shared by paper trading and backtesting.

One market event in; decisions, orders and fills out. Nothing here knows whether the clock is
wall time or replayed time, which is what makes a replay of a paper session reproduce it.
"""

from __future__ import annotations

import logging
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

from engine.breakers.trading_state import StateChange
from engine.clock import Clock
from engine.data.bars import BarBuilder
from engine.execution.fill_model import FillModel
from engine.execution.fill_simulator import FillSimulator
from engine.model.decision import Decision, Signal
from engine.model.fill import Fill
from engine.model.instrument import Instrument
from engine.model.market import Bar, BookSnapshot, MarketEvent, TradeTick
from engine.model.order import Denial, Order, OrderSide, OrderStatus, OrderType, TimeInForce
from engine.portfolio.account import Account
from engine.risk.checks import is_reducing
from engine.risk.manager import RiskManager, RiskRules
from engine.strategy.base import Strategy, StrategyStatus

log = logging.getLogger("paperdesk.engine")

FillListener = Callable[[Fill], None]


class Journal(Protocol):
    """Receives everything the engine does, in order, for persistence. Must not block: it only queues."""

    def market(self, event: MarketEvent) -> None: ...
    def decision(self, decision: Decision, order: Order | None, denial: Denial | None = None) -> None: ...
    def order(self, order: Order) -> None: ...
    def fill(self, fill: Fill) -> None: ...
    def strategy(self, strategy: Strategy) -> None: ...
    def trading_state(self, change: StateChange) -> None: ...


class Engine:
    """Routes market events to the venue and the strategies, and intents to orders.

    The paper venue (FillSimulator) is fed the same events, so every fill is simulated against
    exactly the data the strategies saw.
    """

    def __init__(self, clock: Clock, instruments: Iterable[Instrument], starting_cash: float,
                 strategies: Iterable[Strategy] = (), fill_model: FillModel | None = None,
                 order_id_prefix: str = "O", risk_rules: RiskRules | None = None) -> None:
        self.clock = clock
        self.instruments = {i.symbol: i for i in instruments}
        self.account = Account(starting_cash)
        self.venue = FillSimulator(clock, self.instruments, fill_model or FillModel(), self)
        self.strategies: dict[str, Strategy] = {}
        self.orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}  # the open ones, kept as they change: risk checks ask on every order
        self.decisions: list[Decision] = []
        self.fills: list[Fill] = []
        self.equity_curve: list[tuple[int, float]] = []
        self.recording: list[MarketEvent] | None = None  # set to a list to record what the engine saw
        self.events: deque[tuple[int, str, str]] = deque(maxlen=500)  # operator-facing log lines
        self.fill_listeners: list[FillListener] = []
        self.journal: Journal | None = None
        self._order_prefix = order_id_prefix
        self._order_seq = 0
        self._pending: dict[tuple[str, str], float] = {}  # signed open quantity per (strategy, symbol)
        self._bar_subs: dict[tuple[str, str], list[Strategy]] = {}
        self._tick_subs: dict[str, list[Strategy]] = {}
        self._builders: dict[str, list[BarBuilder]] = {}
        for strategy in strategies:
            self.add_strategy(strategy)
        # without rules nothing is limited or tripped; trading states and the emergency stop still work
        self.risk = RiskManager(self, risk_rules or RiskRules())

    # ---- setup ------------------------------------------------------------------------------

    def add_strategy(self, strategy: Strategy) -> None:
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
            self._bar_subs.setdefault((symbol, strategy.timeframe), []).append(strategy)
            builders = self._builders.setdefault(symbol, [])
            if all(b.timeframe != strategy.timeframe for b in builders):
                builders.append(BarBuilder(symbol, strategy.timeframe))
        strategy.attach(self)

    # ---- market data ----------------------------------------------------------------------

    def process(self, event: MarketEvent) -> None:
        """Handle one market event of any kind."""
        if self.recording is not None:
            self.recording.append(event)
        if self.journal is not None:
            self.journal.market(event)
        risk = self.risk
        kind = type(event)
        ts = event.end if kind is Bar else event.ts
        risk.on_market(event, ts)
        if kind is Bar:
            self.on_bar(event)
        elif kind is TradeTick:
            self.on_trade(event)
        else:
            self.on_book(event)
        if ts >= risk.next_evaluation:  # breakers re-measure once the event is applied (inlined: every event)
            risk.evaluate(ts)

    def on_book(self, book: BookSnapshot) -> None:
        self.venue.on_book(book)
        if book.bids and book.asks:
            self.account.marks[book.symbol] = book.mid

    def on_trade(self, tick: TradeTick) -> None:
        self.venue.on_trade(tick)
        for builder in self._builders.get(tick.symbol, ()):
            bar = builder.update(tick)
            if bar is not None:
                self._dispatch_bar(bar)
        for strategy in self._tick_subs.get(tick.symbol, ()):
            strategy._ts = tick.ts
            try:
                strategy.on_tick(tick)
            except Exception as exc:  # one strategy's bug must not stop the others
                self._fail(strategy, exc)

    def on_bar(self, bar: Bar) -> None:
        """A bar from a bar data source (a file): the venue fills at its prices, then strategies see it."""
        self.venue.on_bar(bar)
        self.account.marks[bar.symbol] = bar.close
        self._dispatch_bar(bar)

    def _dispatch_bar(self, bar: Bar) -> None:
        if self.risk._atr:
            self.risk.on_bar(bar)
        subs = self._bar_subs.get((bar.symbol, bar.timeframe))
        if not subs:
            return
        for strategy in subs:
            strategy._ts = bar.end
            strategy.decided = False
            try:
                strategy.on_bar(bar)
            except Exception as exc:  # one strategy's bug must not stop the others
                self._fail(strategy, exc)
                continue
            if not strategy.decided:
                self.decide(strategy, Decision(bar.end, strategy.name, bar.symbol, Signal.HOLD, 0.0,
                                               "no decision"))

    def _fail(self, strategy: Strategy, exc: Exception) -> None:
        strategy.status = StrategyStatus.FAILED
        strategy.error = f"{type(exc).__name__}: {exc}"
        # new lists, not in-place removal: a dispatch loop may be iterating the old ones right now
        for table in (self._bar_subs, self._tick_subs):
            for key, subs in table.items():
                if strategy in subs:
                    table[key] = [s for s in subs if s is not strategy]
        self.log_event("ERROR", f"strategy {strategy.name} FAILED and stopped: {strategy.error}")
        if self.journal is not None:
            self.journal.strategy(strategy)
        log.error("strategy %s failed:\n%s", strategy.name, "".join(traceback.format_exception(exc)))

    def mark_equity(self, ts: int) -> float:
        equity = self.account.equity()
        self.equity_curve.append((ts, equity))
        return equity

    # ---- StrategyContext ------------------------------------------------------------------

    def now_ns(self) -> int:
        return self.clock.now_ns()

    def strategy_position(self, strategy: str, symbol: str) -> float:
        return self.account.strategy_qty.get((strategy, symbol), 0.0)

    def decide(self, strategy: Strategy, decision: Decision) -> None:
        self.decisions.append(decision)
        if self.journal is not None:
            self.journal.decision(decision, None)

    def intend_target(self, strategy: Strategy, decision: Decision, stop_loss: float | None = None,
                      take_profit: float | None = None, trailing_stop: float | None = None) -> None:
        self.decisions.append(decision)
        key = (strategy.name, decision.symbol)
        target, denial = self.risk.size_target(strategy.name, decision.symbol, decision.target, stop_loss)
        held = self.account.strategy_qty.get(key, 0.0) + self._pending.get(key, 0.0)
        if target is None:
            target = held
        delta = target - held
        qty = self.instruments[decision.symbol].floor_qty(abs(delta))
        order = None
        if qty > 0:
            side = OrderSide.BUY if delta > 0 else OrderSide.SELL
            if not is_reducing(held, target):
                self.risk.brackets.attach(key, self.risk.exit_spec(strategy.name, stop_loss, take_profit,
                                                                   trailing_stop))
            order = self.submit_order(strategy.name, decision.symbol, side, qty)
            self._unbracket_if_refused(key, order)
        elif denial is not None:
            self._denied(decision, denial)
        if self.journal is not None:
            self.journal.decision(decision, order, denial if order is None else None)

    def intend_order(self, strategy: Strategy, decision: Decision, side: OrderSide, qty: float,
                     order_type: OrderType, price: float | None, stop_price: float | None,
                     tif: TimeInForce, reduce_only: bool, stop_loss: float | None = None,
                     take_profit: float | None = None, trailing_stop: float | None = None) -> None:
        self.decisions.append(decision)
        key = (strategy.name, decision.symbol)
        held = self.account.strategy_qty.get(key, 0.0) + self._pending.get(key, 0.0)
        denial = None
        order = None
        if not reduce_only and not is_reducing(held, held + side * qty):
            sized, denial = self.risk.size_entry(strategy.name, decision.symbol, qty, stop_loss)
            instrument = self.instruments[decision.symbol]
            qty = instrument.floor_qty(sized)
            if qty <= 0 and denial is None:
                denial = Denial("sizing", instrument.lot_size, sized, f"the sized entry {sized:g} is under one lot "
                                                                      f"({instrument.lot_size:g})")
            if qty > 0:
                self.risk.brackets.attach(key, self.risk.exit_spec(strategy.name, stop_loss, take_profit,
                                                                   trailing_stop))
        if qty > 0:
            order = self.submit_order(strategy.name, decision.symbol, side, qty, order_type, price, stop_price, tif,
                                      reduce_only)
            self._unbracket_if_refused(key, order)
        elif denial is not None:
            self._denied(decision, denial)
        if self.journal is not None:
            self.journal.decision(decision, order, denial if order is None else None)

    def _unbracket_if_refused(self, key: tuple[str, str], order: Order) -> None:
        """The bracket went on before the entry (a fill may come inside submit); a refused entry takes it off."""
        if order.status is OrderStatus.DENIED or order.status is OrderStatus.REJECTED:
            self.risk.brackets.resync(key)

    def _denied(self, decision: Decision, denial: Denial) -> None:
        self.risk.denials += 1
        self.log_event("WARN", f"{decision.strategy} {decision.signal} {decision.symbol} not sized: {denial.line()}")

    # ---- orders -------------------------------------------------------------------------------

    def submit_order(self, strategy: str, symbol: str, side: OrderSide, qty: float,
                     order_type: OrderType = OrderType.MARKET, price: float | None = None,
                     stop_price: float | None = None, tif: TimeInForce = TimeInForce.GTC,
                     reduce_only: bool = False, origin: str = "strategy", note: str = "") -> Order:
        """Create an order with the next client id, pass it through risk, and send it to the venue.

        origin: "strategy" (every check), "exit" (a bracket child: trading state and reduce-only),
        "flatten" (a breaker's or the emergency stop's close-out: no checks).
        """
        self._order_seq += 1
        order = Order(f"{self._order_prefix}{self._order_seq:07d}", strategy, symbol, side, qty, order_type,
                      price, stop_price, tif, reduce_only, self.clock.now_ns(), reason=note, origin=origin)
        self.orders[order.client_id] = order
        denial = self.risk.check(order)
        if denial is not None:
            order.denial = denial
            order.transition(OrderStatus.DENIED, denial.line())
            self._journal_order(order)
            self.risk.denials += 1
            self.log_event("WARN", f"order {order.client_id} ({strategy} {side.name} {qty:g} {symbol}) denied: "
                                   f"{order.reason}")
            return order
        order.transition(OrderStatus.SUBMITTED)
        self._journal_order(order)
        if origin != "exit":  # bracket children are contingent: they are not the strategy's pending quantity
            key = (strategy, symbol)
            self._pending[key] = self._pending.get(key, 0.0) + side * qty
        self.venue.submit(order)
        self.risk.submitted(order)
        return order

    def pending_qty(self, key: tuple[str, str]) -> float:
        """Signed quantity a strategy's open (non-contingent) orders in a symbol would add."""
        return self._pending.get(key, 0.0)

    def cancel_order(self, client_id: str, reason: str = "canceled on request") -> bool:
        """Ask the venue to cancel; False if the order is unknown or no longer open."""
        order = self.orders.get(client_id)
        if order is None or not order.is_open:
            return False
        previous = order.status
        order.transition(OrderStatus.PENDING_CANCEL)
        self._journal_order(order)
        if not self.venue.cancel(client_id, reason):
            back = OrderStatus.PARTIALLY_FILLED if previous is OrderStatus.PARTIALLY_FILLED else OrderStatus.ACCEPTED
            order.transition(back, "cancel failed: the venue no longer has the order or is matching it")
            self._journal_order(order)
            return False
        return True

    def open_orders(self) -> list[Order]:
        return list(self._open.values())

    # ---- VenueListener --------------------------------------------------------------------

    def order_accepted(self, order: Order, latency_ns: int) -> None:
        order.transition(OrderStatus.ACCEPTED)
        self._journal_order(order)
        self.risk.on_accepted(order, latency_ns)

    def order_triggered(self, order: Order) -> None:
        order.transition(OrderStatus.TRIGGERED)
        self._journal_order(order)

    def order_rejected(self, order: Order, reason: str) -> None:
        order.transition(OrderStatus.REJECTED, reason)
        self._journal_order(order)
        self._release(order)
        self.log_event("WARN", f"order {order.client_id} ({order.strategy} {order.side.name} {order.qty:g} "
                            f"{order.symbol}) rejected: {reason}")

    def order_canceled(self, order: Order, reason: str) -> None:
        order.transition(OrderStatus.CANCELED, reason)
        self._journal_order(order)
        self._release(order)

    def order_filled(self, order: Order, fill: Fill) -> None:
        order.apply_fill(fill.qty, fill.price)
        if not order.is_open:
            self._open.pop(order.client_id, None)
        key = (order.strategy, order.symbol)
        if order.origin != "exit":
            self._pending[key] -= order.side * fill.qty
        self.account.apply_fill(fill)
        self.fills.append(fill)
        if self.journal is not None:
            self.journal.fill(fill)
            self.journal.order(order)
        for listener in self.fill_listeners:
            listener(fill)
        self.risk.on_fill(order, fill)
        strategy = self.strategies.get(order.strategy)
        if strategy is not None and strategy.status is StrategyStatus.RUNNING:
            try:
                strategy.on_fill(fill)
            except Exception as exc:  # one strategy's bug must not stop the others
                self._fail(strategy, exc)

    def _journal_order(self, order: Order) -> None:
        """Every transition but a fill's passes here: keep the open set, then journal it."""
        if order.is_open:
            self._open[order.client_id] = order
        else:
            self._open.pop(order.client_id, None)
        if self.journal is not None:
            self.journal.order(order)

    def _release(self, order: Order) -> None:
        """An order ended unfilled (in part): its remaining quantity is no longer pending."""
        if order.origin == "exit":
            return
        key = (order.strategy, order.symbol)
        self._pending[key] = self._pending.get(key, 0.0) - order.side * order.remaining

    def log_event(self, level: str, message: str) -> None:
        """A line for the operator (console and headless), stamped with engine time."""
        self.events.append((self.clock.now_ns(), level, message))
