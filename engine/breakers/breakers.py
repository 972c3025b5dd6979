"""The circuit breakers: each measures one thing, reports its distance to tripping, and says what a trip does.

A breaker never acts itself: it returns a Trip, and the risk manager imposes the state, cancels and
flattens. Every breaker works in market time, so a backtest trips exactly where the paper session did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.breakers.trading_state import PORTFOLIO, TradingState
from engine.risk.returns import ReturnHistory

DAY_NS = 86_400 * 1_000_000_000
HOUR_NS = 3_600 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Gauge:
    """How close a breaker is to tripping: usage = value / limit, and it trips above 1."""

    breaker: str
    scope: str
    value: float
    limit: float
    detail: str

    @property
    def usage(self) -> float:
        return self.value / self.limit if self.limit else 0.0


@dataclass(frozen=True, slots=True)
class Trip:
    breaker: str
    scope: str
    state: TradingState | None      # None: the trip closes positions without changing the state
    cause: str
    until_ns: int | None = None
    close_all: bool = False
    close_symbols: tuple[str, ...] = ()


def hours(h: float) -> int:
    return int(h * HOUR_NS)


class DailyLoss:
    """Loss since the start of the UTC day (market time), as a fraction of that day's opening equity."""

    name = "daily_loss"

    def __init__(self, limit: float, cooldown_h: float) -> None:
        self.limit, self.cooldown_ns = limit, hours(cooldown_h)
        self.day: int | None = None
        self.day_start_equity = 0.0

    def evaluate(self, ts: int, equity: float, in_force: bool) -> tuple[Gauge, Trip | None]:
        day = ts // DAY_NS
        if day != self.day:
            self.day, self.day_start_equity = day, equity
        loss = max(0.0, (self.day_start_equity - equity) / self.day_start_equity) if self.day_start_equity > 0 else 0.0
        gauge = Gauge(self.name, PORTFOLIO, loss, self.limit,
                      f"daily loss {loss:.2%} of {self.limit:.2%} (day opened at {self.day_start_equity:.2f})")
        if loss > self.limit and not in_force:
            return gauge, Trip(self.name, PORTFOLIO, TradingState.COOLDOWN,
                               f"daily loss {loss:.2%} > limit {self.limit:.2%}", ts + self.cooldown_ns)
        return gauge, None


class Drawdown:
    """Fall from the equity peak (since the session began, or since this breaker last tripped)."""

    name = "drawdown"

    def __init__(self, limit: float, cooldown_h: float) -> None:
        self.limit, self.cooldown_ns = limit, hours(cooldown_h)
        self.peak: float | None = None

    def evaluate(self, ts: int, equity: float, in_force: bool) -> tuple[Gauge, Trip | None]:
        if self.peak is None or equity > self.peak:
            self.peak = equity
        dd = (self.peak - equity) / self.peak if self.peak > 0 else 0.0
        gauge = Gauge(self.name, PORTFOLIO, dd, self.limit,
                      f"drawdown {dd:.2%} from peak {self.peak:.2f} (limit {self.limit:.2%})")
        if dd > self.limit and not in_force:
            cause = f"drawdown {dd:.2%} from peak {self.peak:.2f} > limit {self.limit:.2%}"
            self.peak = None  # after a trip the account is measured from where it stands, not from the old peak
            return gauge, Trip(self.name, PORTFOLIO, TradingState.COOLDOWN, cause, ts + self.cooldown_ns,
                               close_all=True)
        return gauge, None


class OrderLatency:
    """The slowest acknowledgement the venue reported since the last evaluation."""

    name = "order_latency"

    def __init__(self, limit_s: float, pause_h: float) -> None:
        self.limit_ns, self.pause_ns = int(limit_s * 1e9), hours(pause_h)
        self.worst_ns = 0
        self.last_ns = 0

    def observe(self, latency_ns: int) -> None:
        self.worst_ns = max(self.worst_ns, latency_ns)
        self.last_ns = latency_ns

    def evaluate(self, ts: int, in_force: bool) -> tuple[Gauge, Trip | None]:
        worst, self.worst_ns = self.worst_ns, 0
        shown = max(worst, self.last_ns)
        gauge = Gauge(self.name, PORTFOLIO, shown / 1e9, self.limit_ns / 1e9,
                      f"order latency {shown / 1e9:.3f} s (limit {self.limit_ns / 1e9:g} s)")
        if worst > self.limit_ns and not in_force:
            return gauge, Trip(self.name, PORTFOLIO, TradingState.PAUSED,
                               f"order acknowledged after {worst / 1e9:.3f} s > {self.limit_ns / 1e9:g} s",
                               ts + self.pause_ns)
        return gauge, None


class ConsecutiveLosses:
    """Losing round trips in a row, per strategy; a trip cools that strategy down and restarts the count."""

    name = "consecutive_losses"

    def __init__(self, limit: int, cooldown_h: float) -> None:
        self.limit, self.cooldown_ns = limit, hours(cooldown_h)
        self.streak: dict[str, int] = {}

    def on_trade(self, strategy: str, pnl: float, ts: int) -> Trip | None:
        streak = self.streak.get(strategy, 0) + 1 if pnl < 0 else 0
        self.streak[strategy] = streak
        if streak >= self.limit:
            self.streak[strategy] = 0
            return Trip(self.name, strategy, TradingState.COOLDOWN, f"{streak} losing trades in a row",
                        ts + self.cooldown_ns)
        return None

    def gauges(self) -> list[Gauge]:
        return [Gauge(self.name, s, n, self.limit, f"{s}: {n} losing trades in a row (limit {self.limit})")
                for s, n in sorted(self.streak.items())]


class CorrelationBreach:
    """Held positions whose returns move together beyond the limit (signed by the positions' directions)."""

    name = "correlation"

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def evaluate(self, exposures: Mapping[str, float], history: ReturnHistory) -> tuple[Gauge, Trip | None]:
        held = sorted((s for s, v in exposures.items() if v), key=lambda s: -abs(exposures[s]))
        worst, pair = 0.0, None
        for i, a in enumerate(held):
            for b in held[i + 1:]:
                corr = history.correlation(a, b)
                if corr is None:
                    continue
                effective = corr * (1 if exposures[a] * exposures[b] > 0 else -1)
                if effective > worst:
                    worst, pair = effective, (a, b)
        detail = (f"{pair[0]}~{pair[1]} correlation {worst:.2f} (limit {self.limit:.2f})" if pair
                  else "no correlated positions")
        gauge = Gauge(self.name, PORTFOLIO, worst, self.limit, detail)
        if pair is not None and worst > self.limit:
            # keep the larger position, close the smaller one of the pair
            return gauge, Trip(self.name, PORTFOLIO, None, f"{detail}: closing {pair[1]}", close_symbols=(pair[1],))
        return gauge, None


class VolatilitySpike:
    """Recent return volatility against its longer-run level, per symbol; the worst symbol counts."""

    name = "volatility_spike"

    def __init__(self, limit: float, short: int, long: int, pause_h: float) -> None:
        self.limit, self.short, self.long, self.pause_ns = limit, short, long, hours(pause_h)

    def evaluate(self, ts: int, history: ReturnHistory, in_force: bool) -> tuple[Gauge, Trip | None]:
        worst, symbol = 0.0, None
        for s in history.symbols:
            ratio = history.volatility_ratio(s, self.short, self.long)
            if ratio is not None and ratio > worst:
                worst, symbol = ratio, s
        detail = (f"{symbol} volatility {worst:.2f}x its {self.long}-sample level (limit {self.limit:g}x)" if symbol
                  else f"volatility: fewer than {self.long} samples yet")
        gauge = Gauge(self.name, PORTFOLIO, worst, self.limit, detail)
        if worst > self.limit and not in_force:
            return gauge, Trip(self.name, PORTFOLIO, TradingState.PAUSED, detail, ts + self.pause_ns)
        return gauge, None
