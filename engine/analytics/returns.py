"""Return-series metrics: return, volatility, Sharpe, Sortino, Calmar, drawdown, VaR and CVaR.

Drawdown is given twice: from every equity mark (marked_drawdown; open positions at their marks), the
figure the promotion criterion and the reports lead with, and from the period-end equity the return
series is made of (ReturnMetrics.max_drawdown, empyrical's), labelled as such where it is shown.

Conventions (the ones empyrical uses, so its figures and ours agree):
- returns are simple, one per period, from the equity at each period's end;
- annualisation uses periods_per_year: 365 days for 24/7 crypto, 252 for exchange days
  (8760 hours, 525600 minutes for intraday periods of a 24/7 market);
- volatility and Sharpe use the sample standard deviation (ddof=1);
- the risk-free rate is given per year and turned into a per-period rate, (1 + rf)^(1/ppy) - 1;
- drawdown counts the starting equity as the first peak;
- historical VaR is the 5th percentile of period returns (a loss is negative), CVaR the mean
  of the returns at or below it; parametric VaR assumes normal returns (mean + z * stdev).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from engine.clock import utc_text

DAY_NS = 86_400 * 1_000_000_000
CRYPTO_DAYS = 365
EXCHANGE_DAYS = 252
CUTOFF = 0.05  # VaR and CVaR at 95%


def period_returns(points: list[tuple[int, float]], period_ns: int = DAY_NS) -> np.ndarray:
    """Simple returns of the equity at the end of each period (UTC-aligned), from (ts, equity) points.

    The first point is the starting equity; periods with no point carry the last equity forward
    (a day with no mark returned 0%).
    """
    if len(points) < 2:
        return np.empty(0)
    start_period = points[0][0] // period_ns
    ends: dict[int, float] = {}
    for ts, equity in points:
        ends[ts // period_ns] = equity
    last = max(ends)
    values = [points[0][1]]
    equity = points[0][1]
    for period in range(start_period, last + 1):
        equity = ends.get(period, equity)
        values.append(equity)
    series = np.asarray(values, dtype=float)
    return series[1:] / series[:-1] - 1.0


@dataclass(frozen=True, slots=True)
class ReturnMetrics:
    periods: int
    total_return: float
    annual_return: float
    annual_volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float            # negative: -0.12 is a 12% fall from the peak
    max_drawdown_periods: int      # longest stretch below a previous peak, in periods
    var_95: float                  # historical, one period
    cvar_95: float
    parametric_var_95: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator and not math.isnan(denominator) else math.nan


def return_metrics(returns: np.ndarray, periods_per_year: float = CRYPTO_DAYS,
                   risk_free_annual: float = 0.0) -> ReturnMetrics:
    """Every return metric of one series; NaN where a metric is undefined (too few periods, no risk)."""
    r = np.asarray(returns, dtype=float)
    n = len(r)
    if n == 0:
        nan = math.nan
        return ReturnMetrics(0, 0.0, nan, nan, nan, nan, nan, 0.0, 0, nan, nan, nan)
    ppy = periods_per_year
    rf = (1.0 + risk_free_annual) ** (1.0 / ppy) - 1.0
    growth = np.cumprod(1.0 + r)
    total = float(growth[-1] - 1.0)
    annual = (1.0 + total) ** (ppy / n) - 1.0
    excess = r - rf
    mean_excess = float(np.mean(excess))
    std = float(np.std(r, ddof=1)) if n > 1 else math.nan
    excess_std = float(np.std(excess, ddof=1)) if n > 1 else math.nan
    downside = math.sqrt(float(np.mean(np.square(np.minimum(excess, 0.0))))) * math.sqrt(ppy)
    drawdown, duration = _drawdown(growth)
    var = float(np.percentile(r, 100 * CUTOFF))
    cut = int((n - 1) * CUTOFF)
    cvar = float(np.mean(np.partition(r, cut)[:cut + 1]))
    return ReturnMetrics(
        periods=n, total_return=total, annual_return=annual, annual_volatility=std * math.sqrt(ppy),
        sharpe=_ratio(mean_excess, excess_std) * math.sqrt(ppy) if n > 1 else math.nan,
        sortino=_ratio(mean_excess * ppy, downside) if n > 1 else math.nan,
        calmar=_ratio(annual, abs(drawdown)), max_drawdown=drawdown, max_drawdown_periods=duration,
        var_95=var, cvar_95=cvar,
        parametric_var_95=float(np.mean(r)) + NormalDist().inv_cdf(CUTOFF) * std if n > 1 else math.nan)


def _drawdown(growth: np.ndarray) -> tuple[float, int]:
    """Worst fall from a running peak (the start counts as one) and the longest time spent below a peak."""
    if not len(growth):
        return 0.0, 0
    curve = np.concatenate([[1.0], growth])
    peaks = np.maximum.accumulate(curve)
    drawdowns = (curve - peaks) / peaks
    longest = run = 0
    for below in drawdowns < 0:
        run = run + 1 if below else 0
        longest = max(longest, run)
    return float(drawdowns.min()), longest


@dataclass(frozen=True, slots=True)
class MarkedDrawdown:
    """The worst fall from a running peak over every equity mark; the starting equity counts as the first peak."""

    max_drawdown: float    # negative: -0.12 is a 12% fall from the peak
    peak_ts: int | None    # None when equity never fell below a peak
    trough_ts: int | None
    marks: int             # equity points it was measured over, the start included


def marked_drawdown(points: list[tuple[int, float]]) -> MarkedDrawdown:
    """From (ts, equity) points in time order, the first being the starting equity."""
    if not points:
        return MarkedDrawdown(0.0, None, None, 0)
    equity = np.fromiter((e for _, e in points), float, len(points))
    peaks = np.maximum.accumulate(equity)
    drawdowns = (equity - peaks) / peaks
    trough = int(np.argmin(drawdowns))
    if drawdowns[trough] >= 0.0:
        return MarkedDrawdown(0.0, None, None, len(points))
    peak = int(np.argmax(equity[:trough + 1]))  # the first time the peak it fell from was reached
    return MarkedDrawdown(float(drawdowns[trough]), points[peak][0], points[trough][0], len(points))


def equity_metrics(points: list[tuple[int, float]], period_ns: int, periods_per_year: float,
                   risk_free_annual: float) -> dict[str, Any]:
    """Every metric of an equity curve: drawdown from every mark first, then the period-return metrics, whose
    period-end drawdown is renamed period_end_max_drawdown so the two are never taken for each other."""
    marked = marked_drawdown(points)
    periodic = return_metrics(period_returns(points, period_ns), periods_per_year, risk_free_annual).as_dict()
    return {"max_drawdown": marked.max_drawdown,
            "max_drawdown_peak": None if marked.peak_ts is None else utc_text(marked.peak_ts),
            "max_drawdown_trough": None if marked.trough_ts is None else utc_text(marked.trough_ts),
            "equity_marks": marked.marks,
            **{("period_end_" + k if k.startswith("max_drawdown") else k): v for k, v in periodic.items()}}
