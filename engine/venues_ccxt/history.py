"""An exchange's candles as warm-up bars: the history strategies need before the first live bar."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ccxt

from engine.data.bars import timeframe_ns
from engine.model.market import Bar
from engine.venues_ccxt.markets import VenueInputError

NS_PER_MS = 1_000_000
PAGE = 500  # candles per request: within every exchange's limit that ccxt knows


async def warmup_bars(exchange: Any, wants: Mapping[tuple[str, str], int],
                      until_ns: int) -> tuple[list[Bar], list[str]]:
    """For each (symbol, timeframe), its last `count` closed candles that ended by until_ns, as warm-up bars sorted by
    end (a shorter timeframe first where two end together), fewer where the exchange has fewer; and a note for each
    timeframe the exchange has no candles of (its bars are built from live trades as ever, so they warm up live)."""
    offered = getattr(exchange, "timeframes", None) or {}
    missing = sorted({tf for _, tf in wants if offered and tf not in offered}, key=timeframe_ns)
    notes = [f"{exchange.id} has no {tf} candles (it has {', '.join(sorted(offered, key=_ns_or_max))}): strategies "
             f"on {tf} bars warm up on live data" for tf in missing]
    bars: list[Bar] = []
    for (symbol, timeframe), count in sorted(wants.items()):
        if count > 0 and timeframe not in missing:
            bars += await _candles(exchange, symbol, timeframe, count, until_ns)
    bars.sort(key=lambda b: (b.end, b.end - b.ts, b.symbol))
    return bars, notes


async def _candles(exchange: Any, symbol: str, timeframe: str, count: int, until_ns: int) -> list[Bar]:
    period_ms = timeframe_ns(timeframe) // NS_PER_MS
    until_ms = until_ns // NS_PER_MS
    since = until_ms - (count + 1) * period_ms  # one more: the newest may still be open
    rows: dict[int, list[Any]] = {}
    while since < until_ms:
        try:
            page = await exchange.fetch_ohlcv(symbol, timeframe, since, PAGE)
        except ccxt.BaseError as exc:
            raise VenueInputError(f"{exchange.id}: cannot fetch {timeframe} candles of {symbol} to warm strategies "
                                  f"up ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); nothing was "
                                  "traded") from None
        fresh = [row for row in page if row[0] >= since]
        if not fresh:
            break
        for row in fresh:
            rows[int(row[0])] = row
        since = int(fresh[-1][0]) + period_ms
    closed = [row for start, row in sorted(rows.items()) if start + period_ms <= until_ms][-count:]
    period_ns = period_ms * NS_PER_MS
    return [Bar(int(row[0]) * NS_PER_MS, symbol, timeframe, float(row[1]), float(row[2]), float(row[3]),
                float(row[4]), float(row[5] or 0.0), int(row[0]) * NS_PER_MS + period_ns, True)
            for row in closed]


def _ns_or_max(timeframe: str) -> int:
    try:
        return timeframe_ns(timeframe)
    except ValueError:  # an exchange timeframe paperdesk cannot name (1M, 1w)
        return 2**62
