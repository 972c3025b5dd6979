"""Market data files in paperdesk's own format, CSV or Parquet: what `paperdesk export --what market_data` writes.

Trades, order-book snapshots, bars and clock ticks, one a row, in the order the engine saw them. Columns: ts (when
it happened: epoch nanoseconds as the export writes it, or any timestamp a bar file takes), symbol, kind (trade,
book, bar, warmup or clock) and, per kind: trade price, size, side (BUY or SELL: the side that took liquidity); book
bids and asks (JSON [[price, size], ...], best first); bar and warmup (a bar from before the session, which warms
strategies and is never traded on) timeframe, open, high, low, close, volume, end_ts; clock nothing. session_id and
seq, as the export writes them, say which session's events the file holds. Every problem is reported with its file,
line (CSV) or row (Parquet), and column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas ships no types and pandas-stubs is not a dependency
import pyarrow.parquet as pq

from engine.data.bar_file import BarFileError, Where, is_parquet, locator, parse_timestamps, read_table
from engine.data.bars import timeframe_ns
from engine.model.market import Bar, BookSnapshot, Heartbeat, MarketEvent, TradeTick, event_time
from engine.model.order import OrderSide

KINDS = ("trade", "book", "bar", "warmup", "clock")
BAR_COLUMNS = ("timeframe", "open", "high", "low", "close", "volume", "end_ts")
NEEDS = {"trade": ("price", "size", "side"), "book": ("bids", "asks"), "bar": BAR_COLUMNS, "warmup": BAR_COLUMNS,
         "clock": ()}


def is_market_file(path: str | Path) -> bool:
    """Whether a CSV or Parquet file is market data (it has a kind column) rather than bars."""
    path = Path(path)
    try:
        if is_parquet(path):
            names = pq.read_schema(path).names
        else:
            with open(path, encoding="utf-8", errors="replace") as handle:
                names = handle.readline().split(",")
    except (OSError, ValueError):
        return False  # unreadable: the bar file reader says why
    return "kind" in (str(n).strip().lower() for n in names)


@dataclass(frozen=True, slots=True)
class MarketFile:
    """A validated market data file's events, and the session and first event number it names (if it does)."""

    path: Path
    events: list[MarketEvent]
    session_id: int | None
    first_seq: int | None
    symbols: tuple[str, ...]

    def between(self, start_ns: int | None, end_ns: int | None) -> list[MarketEvent]:
        """The events at or after start_ns and before end_ns (a bar by its end, as the engine sees it)."""
        return [e for e in self.events
                if (start_ns is None or event_time(e) >= start_ns) and (end_ns is None or event_time(e) < end_ns)]


def load_market_file(path: str | Path) -> MarketFile:
    path = Path(path)
    raw = read_table(path)
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    head = path if is_parquet(path) else f"{path}:1"
    time_column = "ts" if "ts" in raw.columns else "timestamp"
    missing = [c for c in (time_column, "symbol", "kind") if c not in raw.columns]
    if missing:
        raise BarFileError(f"{head}: missing column(s) {', '.join(missing)}; market data needs ts, symbol, kind and "
                           "the columns of each kind (see `paperdesk export --what market_data`)")
    if len(raw) == 0:
        raise BarFileError(f"{path}: no events after the header")
    where = locator(path)
    kinds = _text(raw["kind"]).str.lower()
    known = kinds.isin(KINDS).to_numpy(dtype=bool)
    if not known.all():
        i = int(np.flatnonzero(~known)[0])
        raise BarFileError(f"{where(i)}: kind is {kinds.iloc[i]!r}; expected one of {', '.join(KINDS)}")
    kind = kinds.to_numpy(dtype=object)
    for name, columns in NEEDS.items():
        absent = [c for c in columns if c not in raw.columns]
        rows = np.flatnonzero(kind == name)
        if absent and len(rows):
            raise BarFileError(f"{where(rows[0])}: a {name} event needs column(s) {', '.join(absent)}, which the "
                               "file does not have")
    ts = parse_timestamps(raw[time_column], where)
    symbols = _text(raw["symbol"])
    empty = np.flatnonzero((symbols == "").to_numpy(dtype=bool, na_value=True) & (kind != "clock"))
    if len(empty):
        raise BarFileError(f"{where(empty[0])}: symbol is empty")
    symbol = symbols.fillna("").to_numpy(dtype=object)

    events: list[MarketEvent | None] = [None] * len(raw)
    for i in np.flatnonzero(kind == "clock").tolist():
        events[i] = Heartbeat(int(ts[i]), symbol[i])
    trades = np.flatnonzero(kind == "trade")
    if len(trades):
        price = _positive(raw["price"], trades, "price", where)
        size = _positive(raw["size"], trades, "size", where)
        sides = _text(raw["side"]).str.upper().to_numpy(dtype=object)
        for i in trades.tolist():
            side = sides[i]
            if side not in ("BUY", "SELL"):
                raise BarFileError(f"{where(i)}: side is {side!r}; a trade's side is BUY or SELL (who took liquidity)")
            events[i] = TradeTick(int(ts[i]), symbol[i], float(price[i]), float(size[i]), OrderSide[side])
    for i in np.flatnonzero(kind == "book").tolist():
        events[i] = BookSnapshot(int(ts[i]), symbol[i], _levels(raw["bids"].iloc[i], "bids", where(i)),
                                 _levels(raw["asks"].iloc[i], "asks", where(i)))
    bars = np.flatnonzero((kind == "bar") | (kind == "warmup"))
    if len(bars):
        o, h, lo, c = (_positive(raw[n], bars, n, where) for n in ("open", "high", "low", "close"))
        volume = _numbers(raw["volume"], bars, "volume", where)
        ends = _integers(raw["end_ts"], bars, "end_ts", where)
        frames = _text(raw["timeframe"]).to_numpy(dtype=object)
        for i in bars.tolist():
            try:
                timeframe_ns(frames[i])
            except (ValueError, TypeError):
                raise BarFileError(f"{where(i)}: timeframe is {frames[i]!r}, not a length like 1m") from None
            if h[i] < lo[i] or not lo[i] <= o[i] <= h[i] or not lo[i] <= c[i] <= h[i] or volume[i] < 0:
                raise BarFileError(f"{where(i)}: bar open {o[i]:g} high {h[i]:g} low {lo[i]:g} close {c[i]:g} "
                                   f"volume {volume[i]:g} is not a bar (high >= open, close >= low; volume >= 0)")
            if ends[i] <= ts[i]:
                raise BarFileError(f"{where(i)}: end_ts {ends[i]} is not after the bar's ts {ts[i]}")
            events[i] = Bar(int(ts[i]), symbol[i], frames[i], float(o[i]), float(h[i]), float(lo[i]), float(c[i]),
                            float(volume[i]), int(ends[i]), kind[i] == "warmup")
    checked = [e for e in events if e is not None]
    _check_order(checked, where)
    return MarketFile(path, checked, _session(raw, where), _first_seq(raw, where),
                      tuple(dict.fromkeys(s for s, k in zip(symbol, kind, strict=True) if k != "clock")))


def _text(column: pd.Series) -> pd.Series:
    return column.astype("string").str.strip()


def _numbers(column: pd.Series, rows: np.ndarray, name: str, where: Where) -> np.ndarray:
    """The column as floats; each of rows must hold a finite number."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = column.to_numpy(dtype=float, na_value=np.nan)
    else:
        numbers = pd.to_numeric(_text(column), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = rows[~np.isfinite(numbers[rows])]
    if len(bad):
        shown = column.iloc[bad[0]]
        raise BarFileError(f"{where(bad[0])}: {name} is {shown!r}, not a finite number" if str(shown).strip() else
                           f"{where(bad[0])}: {name} is empty")
    return numbers


def _integers(column: pd.Series, rows: np.ndarray, name: str, where: Where) -> np.ndarray:
    """Each of rows as a whole number, exactly (nanosecond times do not fit a float)."""
    out = np.zeros(len(column), dtype=np.int64)
    text = _text(column)
    for i in rows.tolist():
        cell = text.iloc[i]
        try:
            out[i] = int(cell)
        except (TypeError, ValueError):
            raise BarFileError(f"{where(i)}: {name} is {cell!r}, not a whole number" if isinstance(cell, str) and cell
                               else f"{where(i)}: {name} is empty") from None
    return out


def _positive(column: pd.Series, rows: np.ndarray, name: str, where: Where) -> np.ndarray:
    numbers = _numbers(column, rows, name, where)
    bad = rows[numbers[rows] <= 0]
    if len(bad):
        raise BarFileError(f"{where(bad[0])}: {name} {numbers[bad[0]]:g} is not positive")
    return numbers


def _levels(cell: object, name: str, where: str) -> tuple[tuple[float, float], ...]:
    try:
        levels = json.loads(str(cell))
        out = tuple((float(p), float(q)) for p, q in levels)
    except (ValueError, TypeError):
        raise BarFileError(f"{where}: {name} is {str(cell)[:60]!r}, not JSON [[price, size], ...]") from None
    if any(not (np.isfinite(p) and np.isfinite(q)) or p <= 0 or q < 0 for p, q in out):
        raise BarFileError(f"{where}: {name} has a level that is not a positive price and a size >= 0")
    return out


def _check_order(events: list[MarketEvent], where: Where) -> None:
    times = np.fromiter((event_time(e) for e in events), dtype=np.int64, count=len(events))
    bad = np.flatnonzero(np.diff(times) < 0)
    if len(bad):
        i = int(bad[0]) + 1
        raise BarFileError(f"{where(i)}: event time {times[i]} is earlier than the previous event's {times[i - 1]}; "
                           "events must be in the order they happened")


def _session(raw: pd.DataFrame, where: Where) -> int | None:
    if "session_id" not in raw.columns:
        return None
    ids = pd.to_numeric(_text(raw["session_id"]), errors="coerce")
    distinct = ids.dropna().unique()
    if ids.isna().any() or len(distinct) != 1 or distinct[0] != int(distinct[0]):
        found = ", ".join(str(v) for v in raw["session_id"].astype("string").unique()[:5])
        raise BarFileError(f"{where(0)}: session_id holds {found}; a file of one session's events has one whole "
                           "session id (export one session: --session ID)")
    return int(distinct[0])


def _first_seq(raw: pd.DataFrame, where: Where) -> int | None:
    """The first event's number in its session; the numbers must follow one another (no row lost or repeated)."""
    if "seq" not in raw.columns:
        return None
    seq = pd.to_numeric(_text(raw["seq"]), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(seq))
    if len(bad):
        raise BarFileError(f"{where(bad[0])}: seq is {raw['seq'].iloc[bad[0]]!r}, not a whole number")
    jumps = np.flatnonzero(np.diff(seq) != 1)
    if len(jumps):
        i = int(jumps[0]) + 1
        raise BarFileError(f"{where(i)}: seq goes from {seq[i - 1]:.0f} to {seq[i]:.0f}: events are missing, repeated "
                           "or out of order")
    return int(seq[0])
