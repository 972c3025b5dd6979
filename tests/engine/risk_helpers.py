"""A desk for risk tests: an engine on a SimClock, hand-driven strategies, books and trades at chosen prices."""

from __future__ import annotations

from typing import Any

from engine.breakers.trading_state import PORTFOLIO, TradingState
from engine.clock import SimClock
from engine.config import BreakersConfig, PhaseConfig, RiskConfig
from engine.core import Engine
from engine.execution.fill_model import FillModel
from engine.model.instrument import Instrument
from engine.model.market import BookSnapshot, TradeTick
from engine.model.order import OrderSide
from engine.risk.manager import RiskRules, StrategyRules
from engine.store.journal import StoreJournal
from engine.strategy.base import Strategy

SEC = 1_000_000_000
HOUR = 3600 * SEC
T0 = 1_767_225_600 * SEC  # 2026-01-01 00:00 UTC: days start where the tests expect

OFF = dict(daily_loss=None, drawdown=None, order_latency_seconds=None, correlation=None, consecutive_losses=None,
           volatility_spike=None, stale_seconds=None, max_clock_skew_seconds=None)


def breakers(**on: Any) -> BreakersConfig:
    """Every breaker off but the ones named."""
    return BreakersConfig(**{**OFF, **on})


def risk(**limits: Any) -> RiskConfig:
    """No pre-trade limit but the ones named."""
    return RiskConfig(**{"max_submit_rate": None, "max_short_exposure": None, **limits})


class Manual(Strategy):
    """Decides nothing by itself: tests call its intents between market events."""

    kind = "test_manual"


def instrument(symbol: str, tick: float = 0.01, lot: float = 0.001) -> Instrument:
    base, quote = symbol.split("/")
    return Instrument(symbol, base, quote, tick, lot, lot, 0.0, 0.0002, 0.0005)


class Desk:
    def __init__(self, risk_config: RiskConfig | None = None, breaker_config: BreakersConfig | None = None,
                 strategies: dict[str, list[str]] | None = None, rules: dict[str, StrategyRules] | None = None,
                 phases: tuple[PhaseConfig, ...] = (), cash: float = 100_000.0, latency_ms: float = 0.0,
                 symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT"), prices: dict[str, float] | None = None,
                 depth: float = 1000.0) -> None:
        self.clock = SimClock(T0)
        strategies = strategies or {"a": ["BTC/USDT"]}
        self.strategies = {name: Manual(name, syms, "1m") for name, syms in strategies.items()}
        rules = dict(rules or {})
        for name in strategies:
            rules.setdefault(name, StrategyRules())
        self.engine = Engine(self.clock, [instrument(s) for s in symbols], cash, list(self.strategies.values()),
                             FillModel(int(latency_ms * 1e6)),
                             risk_rules=RiskRules(risk_config or risk(), breaker_config or breakers(), phases, rules))
        self.journal = StoreJournal(1, self.clock)
        self.engine.journal = self.journal
        self.prices = dict(prices or {"BTC/USDT": 100.0, "ETH/USDT": 50.0})
        self.depth = depth
        self.tick(0)

    @property
    def risk(self) -> Any:
        return self.engine.risk

    @property
    def guard(self) -> Any:
        return self.engine.guard

    def tick(self, seconds: float = 1.0, trades: bool = True, **moves: float) -> None:
        """Advance market time and print a book (and a trade) per symbol; moves set new prices by symbol key
        (BTC=..., ETH=...)."""
        for key, price in moves.items():
            self.prices[f"{key}/USDT"] = price
        ts = self.clock.now_ns() + int(seconds * SEC)
        self.clock.advance_to(ts)
        for symbol, price in self.prices.items():
            half = max(0.01, round(price * 0.0001, 2))
            self.engine.process(BookSnapshot(ts, symbol, ((round(price - half, 2), self.depth),),
                                             ((round(price + half, 2), self.depth),)))
            if trades:
                self.engine.process(TradeTick(ts, symbol, price, self.depth, OrderSide.BUY))

    def target(self, strategy: str, symbol: str, qty: float, **kw: Any) -> None:
        s = self.strategies[strategy]
        s._ts = self.clock.now_ns()
        s.target_position(symbol, qty, **kw)

    def buy(self, strategy: str, symbol: str, qty: float, **kw: Any) -> None:
        s = self.strategies[strategy]
        s._ts = self.clock.now_ns()
        s.buy(symbol, qty, **kw)

    def sell(self, strategy: str, symbol: str, qty: float, **kw: Any) -> None:
        s = self.strategies[strategy]
        s._ts = self.clock.now_ns()
        s.sell(symbol, qty, **kw)

    def held(self, strategy: str, symbol: str = "BTC/USDT") -> float:
        return self.engine.account.strategy_qty.get((strategy, symbol), 0.0)

    def state(self, scope: str = PORTFOLIO) -> TradingState:
        return self.guard.states.state(scope)

    def last_order(self) -> Any:
        return list(self.engine.orders.values())[-1]

    def audit(self, kind: str = "state") -> list[dict[str, Any]]:
        return [payload for _, k, _, payload in self.journal.audit if k == kind]

    def denied_rows(self) -> list[tuple[Any, ...]]:
        """Decision rows the journal queued with a denied rule: (rule, reason, limit, value)."""
        return [row[11:15] for row in self.journal.pending["decision"] if row[11] is not None]
