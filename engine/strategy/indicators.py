"""Incremental indicators: each update is O(window) at most and allocates nothing per bar."""

from __future__ import annotations

import math
from collections import deque


class SMA:
    """Simple moving average; the sum is exact (math.fsum), so crossings do not depend on float drift."""

    __slots__ = ("period", "window", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self.window: deque[float] = deque(maxlen=period)
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        window = self.window
        window.append(x)
        if len(window) == self.period:
            self.value = math.fsum(window) / self.period
        return self.value


class RSI:
    """Wilder's relative strength index (0..100)."""

    __slots__ = ("period", "_prev", "_gain", "_loss", "_count", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self._prev: float | None = None
        self._gain = 0.0
        self._loss = 0.0
        self._count = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        prev = self._prev
        self._prev = x
        if prev is None:
            return None
        change = x - prev
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        n = self.period
        if self._count < n:
            self._gain += gain
            self._loss += loss
            self._count += 1
            if self._count < n:
                return None
            self._gain /= n
            self._loss /= n
        else:
            self._gain = (self._gain * (n - 1) + gain) / n
            self._loss = (self._loss * (n - 1) + loss) / n
        if self._loss == 0.0:
            self.value = 100.0 if self._gain > 0 else 50.0
        else:
            self.value = 100.0 - 100.0 / (1.0 + self._gain / self._loss)
        return self.value


class Bollinger:
    """Moving average with bands k population standard deviations away."""

    __slots__ = ("period", "k", "window", "middle", "upper", "lower")

    def __init__(self, period: int, k: float) -> None:
        self.period = period
        self.k = k
        self.window: deque[float] = deque(maxlen=period)
        self.middle: float | None = None
        self.upper: float | None = None
        self.lower: float | None = None

    def update(self, x: float) -> float | None:
        window = self.window
        window.append(x)
        if len(window) < self.period:
            return None
        mean = math.fsum(window) / self.period
        var = math.fsum((v - mean) ** 2 for v in window) / self.period
        width = self.k * math.sqrt(var)
        self.middle, self.upper, self.lower = mean, mean + width, mean - width
        return mean


class ATR:
    """Wilder's average true range over bars' high, low and close."""

    __slots__ = ("period", "_prev_close", "_sum", "_count", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self._prev_close: float | None = None
        self._sum = 0.0
        self._count = 0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        prev = self._prev_close
        true_range = high - low if prev is None else max(high, prev) - min(low, prev)
        self._prev_close = close
        if self.value is None:
            self._sum += true_range
            self._count += 1
            if self._count == self.period:
                self.value = self._sum / self.period
        else:
            self.value += (true_range - self.value) / self.period
        return self.value
