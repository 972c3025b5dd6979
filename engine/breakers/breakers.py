"""The circuit breakers: each measures one thing, reports its distance to tripping, and says what a trip does.

A breaker never acts itself: evaluate() returns a Trip and the risk manager imposes the state,
cancels and flattens. Measuring is cheap (it runs on the hot path every evaluation); gauge()
builds the operator's picture only when someone looks. Everything is in market time, so a
backtest trips exactly where the paper session did.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from engine.breakers.trading_state import PORTFOLIO, TradingState
from engine.portfolio.returns import ReturnHistory

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
        self.loss = 0.0

    def evaluate(self, ts: int, equity: float, in_force: bool) -> Trip | None:
        day = ts // DAY_NS
        if day != self.day:
            self.day, self.day_start_equity = day, equity
        start = self.day_start_equity
        self.loss = loss = (start - equity) / start if start > 0 and equity < start else 0.0
        if loss > self.limit and not in_force:
            return Trip(self.name, PORTFOLIO, TradingState.COOLDOWN, f"daily loss {loss:.2%} > limit {self.limit:.2%}",
                        ts + self.cooldown_ns)
        return None

    def gauge(self) -> Gauge:
        return Gauge(self.name, PORTFOLIO, self.loss, self.limit, f"daily loss {self.loss:.2%} of {self.limit:.2%} "
                                                                  f"(day opened at {self.day_start_equity:.2f})")


class Drawdown:
    """Fall from the equity peak (since the session began, or since this breaker last tripped)."""

    name = "drawdown"

    def __init__(self, limit: float, cooldown_h: float) -> None:
        self.limit, self.cooldown_ns = limit, hours(cooldown_h)
        self.peak: float | None = None
        self.drawdown = 0.0

    def evaluate(self, ts: int, equity: float, in_force: bool) -> Trip | None:
        peak = self.peak
        if peak is None or equity > peak:
            self.peak = peak = equity
        self.drawdown = dd = (peak - equity) / peak if peak > 0 else 0.0
        if dd > self.limit and not in_force:
            cause = f"drawdown {dd:.2%} from peak {peak:.2f} > limit {self.limit:.2%}"
            self.peak = None  # after a trip the account is measured from where it stands, not from the old peak
            return Trip(self.name, PORTFOLIO, TradingState.COOLDOWN, cause, ts + self.cooldown_ns, close_all=True)
        return None

    def gauge(self) -> Gauge:
        peak = "-" if self.peak is None else f"{self.peak:.2f}"
        return Gauge(self.name, PORTFOLIO, self.drawdown, self.limit,
                     f"drawdown {self.drawdown:.2%} from peak {peak} (limit {self.limit:.2%})")


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

    def evaluate(self, ts: int, in_force: bool) -> Trip | None:
        worst, self.worst_ns = self.worst_ns, 0
        if worst > self.limit_ns and not in_force:
            return Trip(self.name, PORTFOLIO, TradingState.PAUSED,
                        f"order acknowledged after {worst / 1e9:.3f} s > {self.limit_ns / 1e9:g} s", ts + self.pause_ns)
        return None

    def gauge(self) -> Gauge:
        shown = max(self.worst_ns, self.last_ns)
        return Gauge(self.name, PORTFOLIO, shown / 1e9, self.limit_ns / 1e9,
                     f"order latency {shown / 1e9:.3f} s (limit {self.limit_ns / 1e9:g} s)")


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
        self.worst = 0.0
        self.pair: tuple[str, str] | None = None

    def evaluate(self, exposures: Mapping[str, float], history: ReturnHistory) -> Trip | None:
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
        self.worst, self.pair = worst, pair
        if pair is not None and worst > self.limit:
            # keep the larger position, close the smaller one of the pair
            return Trip(self.name, PORTFOLIO, None, f"{self._detail()}: closing {pair[1]}", close_symbols=(pair[1],))
        return None

    def _detail(self) -> str:
        if self.pair is None:
            return "no correlated positions"
        return f"{self.pair[0]}~{self.pair[1]} correlation {self.worst:.2f} (limit {self.limit:.2f})"

    def gauge(self) -> Gauge:
        return Gauge(self.name, PORTFOLIO, self.worst, self.limit, self._detail())


class _RollingVariance:
    """Variance of the last n values, kept with running sums: O(1) per value."""

    __slots__ = ("n", "values", "total", "squares")

    def __init__(self, n: int) -> None:
        self.n = n
        self.values: deque[float] = deque()
        self.total = self.squares = 0.0

    def add(self, x: float) -> None:
        self.values.append(x)
        self.total += x
        self.squares += x * x
        if len(self.values) > self.n:
            old = self.values.popleft()
            self.total -= old
            self.squares -= old * old

    def variance(self) -> float:
        n = len(self.values)
        mean = self.total / n
        return max(0.0, self.squares / n - mean * mean)


class VolatilitySpike:
    """Recent return volatility against its longer-run level, per symbol; the worst symbol counts."""

    name = "volatility_spike"

    def __init__(self, limit: float, short: int, long: int, pause_h: float) -> None:
        self.limit, self.short, self.long, self.pause_ns = limit, short, long, hours(pause_h)
        self._windows: dict[str, tuple[_RollingVariance, _RollingVariance]] = {}
        self.worst = 0.0
        self.symbol: str | None = None

    def evaluate(self, ts: int, history: ReturnHistory, in_force: bool) -> Trip | None:
        """Called once per return sample: takes each symbol's newest return."""
        worst, symbol = 0.0, None
        for s, series in history.returns.items():
            short, long = self._windows.get(s) or self._windows.setdefault(
                s, (_RollingVariance(self.short), _RollingVariance(self.long)))
            short.add(series[-1])
            long.add(series[-1])
            if len(long.values) < self.long:
                continue
            base = long.variance()
            ratio = math.sqrt(short.variance() / base) if base > 0 else 0.0
            if ratio > worst:
                worst, symbol = ratio, s
        self.worst, self.symbol = worst, symbol
        if worst > self.limit and not in_force:
            return Trip(self.name, PORTFOLIO, TradingState.PAUSED, self._detail(), ts + self.pause_ns)
        return None

    def _detail(self) -> str:
        if self.symbol is None:
            return f"volatility: fewer than {self.long} samples yet"
        return f"{self.symbol} volatility {self.worst:.2f}x its {self.long}-sample level (limit {self.limit:g}x)"

    def gauge(self) -> Gauge:
        return Gauge(self.name, PORTFOLIO, self.worst, self.limit, self._detail())
