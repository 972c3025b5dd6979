"""Market-data health per symbol: stale feed, gaps between bars, crossed or empty books, clock skew.

observe() runs on every market event and only notes what it sees; unhealthy() is asked at breaker
evaluations. A gap, a bad book or a skewed stamp keeps its symbol unhealthy until healthy_after_ns
of clean data has followed; a stale symbol is healthy again with its next event.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.model.market import Bar, BookSnapshot, MarketEvent


class MarketHealth:
    def __init__(self, stale_ns: int | None, skew_ns: int | None, healthy_after_ns: int) -> None:
        self.stale_ns = stale_ns
        self.skew_ns = skew_ns
        self.healthy_after_ns = healthy_after_ns
        self.last_ts: dict[str, int] = {}
        self.problems: dict[str, tuple[str, int]] = {}  # symbol -> (what was wrong, unhealthy until)
        self._bar_end: dict[tuple[str, str], int] = {}

    def observe(self, event: MarketEvent, now: int) -> None:
        symbol = event.symbol
        problem = None
        if type(event) is Bar:
            ts = event.end
            key = (symbol, event.timeframe)
            prev = self._bar_end.get(key)
            if prev is not None and event.ts > prev:
                problem = f"gap: no bars for {(event.ts - prev) / 1e9:g} s"
            self._bar_end[key] = event.end
        else:
            ts = event.ts
            if type(event) is BookSnapshot:
                if not event.bids or not event.asks:
                    problem = "empty book"
                elif event.bids[0][0] >= event.asks[0][0]:
                    problem = f"crossed book: bid {event.bids[0][0]:g} >= ask {event.asks[0][0]:g}"
        if self.skew_ns is not None and (ts - now > self.skew_ns or now - ts > self.skew_ns):
            problem = f"clock skew: data stamped {(ts - now) / 1e9:+.3f} s from the engine clock"
        self.last_ts[symbol] = max(ts, self.last_ts.get(symbol, ts))
        if problem is not None:
            self.problems[symbol] = (problem, now + self.healthy_after_ns)

    def expect(self, symbols: Iterable[str], since_ns: int) -> None:
        """Data is due for symbols from since_ns on: one that never delivers any goes stale like one that stopped."""
        for symbol in symbols:
            self.last_ts.setdefault(symbol, since_ns)

    def unhealthy(self, now: int) -> dict[str, str]:
        """Symbols that are unhealthy now, with why (empty, quickly, when all is well)."""
        out: dict[str, str] = {}
        if self.problems:
            for symbol, (problem, until) in list(self.problems.items()):
                if until > now:
                    out[symbol] = problem
                else:
                    del self.problems[symbol]  # clean data has followed for long enough
        stale = self.stale_ns
        if stale is not None and self.last_ts and now - min(self.last_ts.values()) > stale:
            for symbol, last in self.last_ts.items():
                if now - last > stale:
                    out[symbol] = f"stale: no data for {(now - last) / 1e9:.1f} s"
        return out

    def staleness(self, now: int) -> float:
        """The oldest symbol's silence as a fraction of the stale limit (0 without a limit)."""
        if self.stale_ns is None or not self.last_ts:
            return 0.0
        return max(now - last for last in self.last_ts.values()) / self.stale_ns
