"""Timeframes and bars built from trades."""

from __future__ import annotations

import re
from collections.abc import Sequence

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


class BarAggregator:
    """Builds bars of a longer timeframe from a data source's shorter ones (1m bars into 15m): a bar goes out after the
    shorter bar that ends its period, or, if that one is missing, before the first bar of a later period (overdue)."""

    __slots__ = ("symbol", "timeframe", "period", "_start", "_o", "_h", "_l", "_c", "_v")

    def __init__(self, symbol: str, timeframe: str) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.period = timeframe_ns(timeframe)
        self._start: int | None = None
        self._o = self._h = self._l = self._c = self._v = 0.0

    def overdue(self, bar: Bar) -> Sequence[Bar]:
        """Before bar goes out: the longer bar whose period ended without its last shorter bar (a gap in the data)."""
        if self._start is None or bar.ts < self._start + self.period:
            return ()
        closed = self._bar()
        self._start = None
        return (closed,)

    def update(self, bar: Bar) -> Sequence[Bar]:
        """Add a shorter bar; returns the longer bar it completed (a bar as long or longer is not this one's)."""
        if bar.end - bar.ts >= self.period:
            return ()
        start = bar.ts - bar.ts % self.period
        out: list[Bar] = []
        if self._start is not None and start != self._start:
            out.append(self._bar())  # overdue() was not asked first
            self._start = None
        if self._start is None:
            self._start = start
            self._o, self._h, self._l, self._v = bar.open, bar.high, bar.low, 0.0
        else:
            self._h = max(self._h, bar.high)
            self._l = min(self._l, bar.low)
        self._c = bar.close
        self._v += bar.volume
        if bar.end >= start + self.period:
            out.append(self._bar())
            self._start = None
        return out

    def _bar(self) -> Bar:
        assert self._start is not None
        return Bar(self._start, self.symbol, self.timeframe, self._o, self._h, self._l, self._c, self._v,
                   self._start + self.period)
