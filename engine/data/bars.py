"""Timeframes and bars built from trades."""

from __future__ import annotations

import re

from engine.clock import NS_PER_SECOND
from engine.model.market import Bar, TradeTick

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TIMEFRAME = re.compile(r"^([1-9][0-9]*)([smhd])$")


def timeframe_ns(timeframe: str) -> int:
    """Length of a timeframe such as '5s', '1m', '4h' or '1d' in nanoseconds."""
    match = _TIMEFRAME.match(timeframe)
    if not match:
        raise ValueError(f"timeframe {timeframe!r} is not a number followed by s, m, h or d (e.g. '1m')")
    return int(match.group(1)) * _UNITS[match.group(2)] * NS_PER_SECOND


class BarBuilder:
    """Aggregates trades into bars aligned to the timeframe; a bar closes on the first later trade."""

    __slots__ = ("symbol", "timeframe", "period", "_start", "_o", "_h", "_l", "_c", "_v")

    def __init__(self, symbol: str, timeframe: str) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.period = timeframe_ns(timeframe)
        self._start: int | None = None
        self._o = self._h = self._l = self._c = self._v = 0.0

    def update(self, tick: TradeTick) -> Bar | None:
        """Add a trade; returns the bar it closed, if any."""
        start = tick.ts - tick.ts % self.period
        price = tick.price
        closed = None
        if self._start is None or start != self._start:
            if self._start is not None:
                closed = Bar(self._start, self.symbol, self.timeframe, self._o, self._h, self._l, self._c,
                             self._v, self._start + self.period)
            self._start = start
            self._o = self._h = self._l = price
            self._v = 0.0
        elif price > self._h:
            self._h = price
        elif price < self._l:
            self._l = price
        self._c = price
        self._v += tick.size
        return closed
