"""The twin backtest: the market data a paper session recorded, replayed through the ordinary backtest.

Same strategies and parameters (the session's stored config), same risk rules, same engine; only
the venue is the backtest's assumption (no latency, market orders whole at the mid), the feed has
no gaps, and no operator touches it. Every difference from the paper session comes from those.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.breakers.trading_state import StateChange
from engine.brokers.paper import PaperBroker
from engine.clock import Clock, SimClock, monotonic_s
from engine.config import AppConfig
from engine.core import Engine
from engine.execution.fill_model import FillModel
from engine.execution.fill_simulator import FillSimulator, _Working
from engine.model.decision import Decision
from engine.model.fill import Fill, FillBasis, Liquidity
from engine.model.instrument import Instrument
from engine.model.market import MarketEvent
from engine.model.order import Denial, Order, OrderStatus
from engine.replay import replay
from engine.runtime import build_engine, build_instruments
from engine.strategy.base import Strategy
from engine.validation.matching import DecisionRecord
from engine.validation.records import FillRecord, SessionRecords


def twin_fill_model(config: AppConfig) -> FillModel:
    """What a backtest assumes: no latency, no slippage; limit orders by the session's own rule."""
    return FillModel(0, config.venue.limit_fill, 0.0, slippage=False)


@dataclass(slots=True)
class DecisionLog:
    """A journal for the twin engine that keeps only decisions and state changes, in memory."""

    decisions: list[DecisionRecord] = field(default_factory=list)
    states: list[StateChange] = field(default_factory=list)

    def market(self, event: MarketEvent) -> None:
        pass

    def decision(self, decision: Decision, order: Order | None, denial: Denial | None = None) -> None:
        if order is not None and order.status is OrderStatus.DENIED:
            denial = order.denial
        rule: str | None = None
        text: str | None = None
        if denial is not None:
            rule, text = denial.rule, denial.message
        elif order is not None and order.status is OrderStatus.REJECTED:
            rule, text = "venue", order.reason
        self.decisions.append(DecisionRecord(decision.ts, decision.strategy, decision.symbol, decision.signal.value,
                                             decision.confidence, decision.reason, dict(decision.indicators),
                                             decision.target, order.client_id if order is not None else None,
                                             rule, text))

    def order(self, order: Order) -> None:
        pass

    def fill(self, fill: Fill) -> None:
        pass

    def strategy(self, strategy: Strategy) -> None:
        pass

    def trading_state(self, change: StateChange) -> None:
        self.states.append(change)


OrderKey = tuple[str, str, str, str, int]  # strategy, symbol, side, type, created_ns: the same order on both sides


def order_key(order: Order) -> OrderKey:
    """Paper's order and the twin's are the same order when made for the same strategy, symbol, side and type at
    the same market time (both engines stamp an order with the time of the event that made it)."""
    return (order.strategy, order.symbol, order.side.name, order.type.value, order.created_ns)


@dataclass(slots=True)
class PaperTreatment:
    """What the paper venue did to orders, put back for the twin's same orders in a counterfactual replay."""

    latency_ns: dict[OrderKey, int] = field(default_factory=dict)   # how long each took to reach the venue
    price: dict[OrderKey, float] = field(default_factory=dict)      # the average price it filled at
    filled: dict[OrderKey, float] = field(default_factory=dict)     # the share of it that filled (when not all)
    rejected: dict[OrderKey, str] = field(default_factory=dict)     # the venue refused it, saying this


class TwinVenue(FillSimulator):
    """The twin's simulated venue: the backtest's, except for the orders given a paper treatment."""

    def __init__(self, clock: Clock, instruments: dict[str, Instrument], model: FillModel,
                 listener: PaperBroker) -> None:
        super().__init__(clock, instruments, model, listener)
        self.treatment = PaperTreatment()
        self._short: list[_Working] = []  # orders filled as far as paper's were: the rest ends at the next event

    def latency_of(self, order: Order) -> int:
        return self.treatment.latency_ns.get(order_key(order), self.model.latency_ns)

    def submit(self, order: Order) -> None:
        reason = self.treatment.rejected.get(order_key(order))
        if reason is None:
            super().submit(order)
        else:
            self.listener.order_rejected(order, reason)

    def advance(self, ts: int) -> None:
        for w in self._short:
            if self._by_id.get(w.order.client_id) is w:
                self._close(w, f"filled {w.order.qty - w.remaining:g} of {w.order.qty:g}, as paper's was")
        self._short.clear()
        super().advance(ts)

    def _fill(self, w: _Working, qty: float, price: float, liquidity: Liquidity, basis: FillBasis,
              depth: float, ts: int) -> None:
        key = order_key(w.order)
        price = self.treatment.price.get(key, price)
        share = self.treatment.filled.get(key)
        if share is not None:
            left = w.instrument.floor_qty(w.order.qty * share) - (w.order.qty - w.remaining)
            if qty >= left:  # this fill takes it as far as paper's went
                qty = left
                if w not in self._short:
                    self._short.append(w)
            if qty <= 0:
                return
        super()._fill(w, qty, price, liquidity, basis, depth, ts)


class TwinBroker(PaperBroker):
    """The simulated venue with a TwinVenue behind it."""

    def __init__(self, clock: Clock, instruments: dict[str, Instrument], model: FillModel,
                 starting_cash: float) -> None:
        super().__init__(clock, instruments, model, starting_cash)
        self.simulator = venue = TwinVenue(clock, instruments, model, self)
        self.advance = venue.advance
        self.on_book = venue.on_book
        self.on_trade = venue.on_trade
        self.on_bar = venue.on_bar


@dataclass(slots=True)
class Twin:
    engine: Engine
    events: int
    log: DecisionLog
    seconds: float = 0.0  # what replaying took (wall time)

    @property
    def venue(self) -> TwinVenue:
        broker = self.engine.broker
        assert isinstance(broker, TwinBroker)
        return broker.simulator  # type: ignore[return-value]

    def fills(self) -> list[FillRecord]:
        return [FillRecord(f.client_id, f.strategy, f.symbol, f.side.name, f.qty, f.price, f.ts, f.basis.value,
                           f.depth, f.latency_ns, f.slippage_bps) for f in self.engine.fills]

    def step(self, events: Iterable[MarketEvent]) -> None:
        self.events += replay(self.engine, events)

    def branch(self) -> Twin:
        """An independent copy of this twin as it stands, to replay on with other conditions (decisions from here on
        in its own log)."""
        engine = self.engine
        log = DecisionLog()
        memo: dict[int, object] = {id(self.log): log, id(engine.decisions): [], id(engine.fills): [],
                                   id(engine.equity_curve): []}
        for strategy in engine.strategies.values():
            memo[id(strategy._ctx)] = None  # a port is bound to its engine: the copy gets its own
        copied = copy.deepcopy(engine, memo)
        for strategy in copied.strategies.values():
            strategy._ctx = copied._port(strategy)
        return Twin(copied, self.events, log)


def new_twin(records: SessionRecords) -> Twin:
    """The session's twin before its first event: the session's config on a SimClock, the backtest's venue."""
    config = records.config
    clock = SimClock()
    broker = TwinBroker(clock, build_instruments(config), twin_fill_model(config), config.session.starting_cash)
    engine = build_engine(config, clock, broker=broker)
    engine.records_exits = records.records_exits
    log = DecisionLog()
    engine.journal = log
    # every instrument is expected to deliver data from the session's start, as in the session (a symbol that never
    # does goes stale there, and so here)
    engine.guard.health.expect(engine.instruments, records.market_start_ns)
    return Twin(engine, 0, log)


def run_twin(records: SessionRecords) -> Twin:
    """Replay the session's market data (missed events included) through the backtest."""
    twin = new_twin(records)
    started = monotonic_s()
    twin.step(records.market_events())
    twin.seconds = monotonic_s() - started
    return twin
