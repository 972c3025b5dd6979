"""The twin backtest: the market data a paper session recorded, replayed through the ordinary backtest.

Same strategies and parameters (the session's stored config), same risk rules, same engine; only
the venue is the backtest's assumption (no latency, market orders whole at the mid), the feed has
no gaps, and no operator touches it. Every difference from the paper session comes from those.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.backtest import backtest_events
from engine.breakers.trading_state import StateChange
from engine.config import AppConfig
from engine.core import Engine
from engine.execution.fill_model import FillModel
from engine.model.decision import Decision
from engine.model.fill import Fill
from engine.model.market import MarketEvent
from engine.model.order import Denial, Order, OrderStatus
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


@dataclass(frozen=True, slots=True)
class Twin:
    engine: Engine
    events: int
    log: DecisionLog

    def fills(self) -> list[FillRecord]:
        return [FillRecord(f.client_id, f.strategy, f.symbol, f.side.name, f.qty, f.price, f.ts, f.basis.value,
                           f.depth, f.latency_ns, f.slippage_bps) for f in self.engine.fills]


def run_twin(records: SessionRecords) -> Twin:
    """Replay the session's market data (missed events included) through the backtest."""
    log = DecisionLog()
    engine, count = backtest_events(records.config, records.market_events(),
                                    fill_model=twin_fill_model(records.config), journal=log,
                                    data_due_from=records.market_start_ns)
    return Twin(engine, count, log)
