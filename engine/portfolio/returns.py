"""Return history sampled from marks at fixed market-time steps: correlation, historical VaR, volatility spikes.

All symbols are sampled at the same instants, so their series line up for correlation and for the
portfolio P&L scenarios VaR replays.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

import numpy as np


class ReturnHistory:
    """Log returns per symbol, one per sample_ns of market time, the last `window` kept."""

    def __init__(self, symbols: list[str], sample_ns: int, window: int, min_samples: int) -> None:
        self.symbols = list(symbols)
        self.sample_ns = sample_ns
        self.min_samples = min_samples
        self.returns: dict[str, deque[float]] = {s: deque(maxlen=window) for s in symbols}
        self._last: dict[str, float] | None = None
        self._next_ns: int | None = None

    @property
    def samples(self) -> int:
        return len(self.returns[self.symbols[0]]) if self.symbols else 0

    def observe(self, ts: int, marks: Mapping[str, float]) -> bool:
        """Take a sample if one is due and every symbol has a mark; True when it added a return."""
        if self._next_ns is not None and ts < self._next_ns:
            return False
        if any(s not in marks for s in self.symbols):
            return False
        prices = {s: marks[s] for s in self.symbols}
        last, self._last = self._last, prices
        self._next_ns = ts + self.sample_ns
        if last is None:
            return False
        for s in self.symbols:
            self.returns[s].append(math.log(prices[s] / last[s]))
        return True

    def correlation(self, a: str, b: str) -> float | None:
        """Pearson correlation of the two symbols' returns; None until min_samples exist or if one is flat."""
        if a == b or self.samples < self.min_samples:
            return None
        x, y = np.fromiter(self.returns[a], float), np.fromiter(self.returns[b], float)
        if x.std() == 0.0 or y.std() == 0.0:
            return None
        return float(np.corrcoef(x, y)[0, 1])

    def var95(self, exposures: Mapping[str, float], horizon_ns: int) -> float | None:
        """Historical 95% value at risk, in money, of holding these signed notionals for horizon_ns.

        Each past sample is a scenario for the portfolio's P&L over one sample; the 5th percentile is
        scaled to the horizon by the square root of time. None until min_samples exist.
        """
        if self.samples < self.min_samples:
            return None
        pnl = np.zeros(self.samples)
        for symbol, notional in exposures.items():
            if notional:
                pnl += notional * np.expm1(np.fromiter(self.returns[symbol], float))
        loss = -float(np.percentile(pnl, 5))
        return max(0.0, loss) * math.sqrt(horizon_ns / self.sample_ns)
