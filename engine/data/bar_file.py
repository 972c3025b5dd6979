"""OHLCV files, CSV or Parquet: validated strictly, because a silently "fixed" bar would fake a backtest.

Columns: timestamp (when the bar opens; `time`, `datetime`, `date` or `ts` are taken for it too), open, high, low,
close, volume, and optionally symbol (several symbols in one file); other columns are ignored. Timestamps are ISO
8601 text (naive means UTC; an offset is converted to UTC), whole epoch seconds, milliseconds, microseconds or
nanoseconds (told apart by magnitude, one unit per file), or a Parquet timestamp column. Every problem is reported
with its file, line (CSV, the header being line 1) or row (Parquet, from 1), and column. Gaps (missing bars in a
regular series) are not errors here: gaps() lists them and the caller decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas ships no types and pandas-stubs is not a dependency

from engine.clock import NS_PER_SECOND, utc_text
from engine.data.bars import timeframe_ns
from engine.model.market import Bar

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
TIME_ALIASES = ("time", "datetime", "date", "ts")
PARQUET_SUFFIXES = (".parquet", ".pq")
# epoch magnitudes: below 1e11 seconds (until year 5138), below 1e14 milliseconds, below 1e17 microseconds
_EPOCH_LIMITS = (10**11, 10**14, 10**17)
_EPOCH_SCALE = (NS_PER_SECOND, 1_000_000, 1_000, 1)
_EPOCH_NAMES = ("seconds", "milliseconds", "microseconds", "nanoseconds")
_DIGITS = re.compile(r"[+-]?\d+")

Where = Callable[[int], str]


class BarFileError(ValueError):
    """A bar file that cannot be used as it is; the message names the file, line or row, and column."""


def timeframe_of(ns: int) -> str:
    """The shortest timeframe string for a span of whole seconds ('60s' -> '1m')."""
    seconds = ns // NS_PER_SECOND
    if seconds <= 0 or seconds * NS_PER_SECOND != ns:
        raise ValueError(f"bar spacing of {ns} ns is not a whole number of seconds")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() in PARQUET_SUFFIXES


def locator(path: Path) -> Where:
    """How a data row (0-based) is named in messages: 'f.csv:5' (its line) or 'f.parquet row 4'."""
    if is_parquet(path):
        return lambda i: f"{path} row {int(i) + 1}"
    return lambda i: f"{path}:{int(i) + 2}"


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars missing from a regular series: between the bar opening at last_ns and the one opening at next_ns."""

    symbol: str
    where: str  # the bar after the gap, as messages name it
    last_ns: int
    next_ns: int
    missing: int

    def line(self, timeframe: str) -> str:
        return (f"{self.where}: {self.symbol}: {self.missing} {timeframe} bar{'s' if self.missing > 1 else ''} "
                f"missing between {utc_text(self.last_ns)} and {utc_text(self.next_ns)}")


@dataclass(frozen=True, slots=True)
class Gaps:
    """A series' gaps: how many, how many bars they miss in all, and the first few."""

    count: int
    missing: int
    first: tuple[Gap, ...]


@dataclass(frozen=True, slots=True)
class BarFile:
    """One symbol's validated bars held as columns; bars() yields Bar values lazily.

    rows: each bar's data row in the file (0-based), for messages; None when bar i is row i.
    """

    path: Path
    symbol: str
    timeframe: str
    period_ns: int
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def where(self, i: int) -> str:
        return locator(self.path)(i if self.rows is None else int(self.rows[i]))

    def bars(self) -> Iterator[Bar]:
        symbol, timeframe, period = self.symbol, self.timeframe, self.period_ns
        for ts, o, h, lo, c, v in zip(self.ts.tolist(), self.open.tolist(), self.high.tolist(),
                                      self.low.tolist(), self.close.tolist(), self.volume.tolist(),
                                      strict=True):
            yield Bar(ts, symbol, timeframe, o, h, lo, c, v, ts + period)

    def between(self, start_ns: int | None, end_ns: int | None) -> BarFile:
        """The bars opening at or after start_ns and before end_ns (None: no bound)."""
        lo = 0 if start_ns is None else int(np.searchsorted(self.ts, start_ns, side="left"))
        hi = len(self.ts) if end_ns is None else int(np.searchsorted(self.ts, end_ns, side="left"))
        rows = np.arange(lo, hi) if self.rows is None else self.rows[lo:hi]
        return replace(self, ts=self.ts[lo:hi], open=self.open[lo:hi], high=self.high[lo:hi], low=self.low[lo:hi],
                       close=self.close[lo:hi], volume=self.volume[lo:hi], rows=rows)

    def gaps(self, limit: int = 5) -> Gaps:
        steps = np.diff(self.ts)
        at = np.flatnonzero(steps > self.period_ns)
        missing = steps[at] // self.period_ns - 1
        first = tuple(Gap(self.symbol, self.where(int(i) + 1), int(self.ts[i]), int(self.ts[i + 1]), int(m))
                      for i, m in zip(at[:limit], missing[:limit], strict=True))
        return Gaps(len(at), int(missing.sum()), first)


def merged_bars(files: Sequence[BarFile]) -> Iterator[Bar]:
    """Several symbols' bars in time order; bars closing together come in the order of files."""
    if len(files) == 1:
        yield from files[0].bars()
        return
    ends = np.concatenate([f.ts + f.period_ns for f in files])
    which = np.concatenate([np.full(len(f), k) for k, f in enumerate(files)])
    order = np.lexsort((which, ends))
    columns = [np.concatenate([getattr(f, name) for f in files])[order].tolist()
               for name in ("ts", "open", "high", "low", "close", "volume")]
    names = [(f.symbol, f.timeframe, f.period_ns) for f in files]
    for k, ts, o, h, lo, c, v in zip(which[order].tolist(), *columns, strict=True):
        symbol, timeframe, period = names[k]
        yield Bar(ts, symbol, timeframe, o, h, lo, c, v, ts + period)


def load_bar_file(path: str | Path, symbol: str, timeframe: str | None = None) -> BarFile:
    """Read and validate one symbol's OHLCV bars (a file with a symbol column: that symbol's rows).

    timeframe defaults to the smallest spacing between bars.
    """
    return load_bar_files([(Path(path), symbol)], timeframe)[0]


def load_bar_files(specs: Sequence[tuple[Path, str | None]], timeframe: str | None = None,
                   default_symbol: str | None = None) -> list[BarFile]:
    """Every symbol's bars in the given files, one BarFile per symbol, all on one timeframe.

    Each spec is a file and its symbol: for a file without a symbol column, the symbol of all its bars (None:
    default_symbol); for one with, the symbol to keep (None: all of them). timeframe defaults to the smallest
    spacing in any of them.
    """
    series: list[_Series] = []
    seen: dict[str, Path] = {}
    for path, symbol in specs:
        for s in _parse(Path(path), symbol, default_symbol):
            if s.symbol in seen:
                raise BarFileError(f"{s.path}: {s.symbol} has bars in {seen[s.symbol]} too; give each symbol's bars "
                                   "once")
            seen[s.symbol] = s.path
            series.append(s)
    if timeframe is None:
        spacings = [int(np.diff(s.ts).min()) for s in series if len(s.ts) > 1]
        if not spacings:
            raise BarFileError(f"{series[0].path}: one bar is not enough to infer the timeframe; pass --timeframe")
        period = min(spacings)
        try:
            timeframe = timeframe_of(period)
        except ValueError as exc:
            raise BarFileError(f"{series[0].path}: {exc}; pass --timeframe") from None
    else:
        try:
            period = timeframe_ns(timeframe)
        except ValueError as exc:
            raise BarFileError(str(exc)) from None
    for s in series:
        s.check_grid(timeframe, period)
    out = []
    for s in series:
        open_, high, low, close, volume = s.values
        out.append(BarFile(s.path, s.symbol, timeframe, period, s.ts, open_, high, low, close, volume, s.rows))
    return out


@dataclass(slots=True)
class _Series:
    path: Path
    symbol: str
    ts: np.ndarray
    values: tuple[np.ndarray, ...]  # open, high, low, close, volume
    rows: np.ndarray | None
    where: Where
    shown: Callable[[int], str]  # a row's timestamp as the file wrote it

    def row(self, i: int) -> int:
        return i if self.rows is None else int(self.rows[i])

    def check_order(self) -> None:
        steps = np.diff(self.ts)
        bad = np.flatnonzero(steps <= 0)
        if not len(bad):
            return
        i = int(bad[0]) + 1
        row, prev = self.row(i), self.row(i - 1)
        whose = f"the previous {self.symbol} bar's" if self.rows is not None else "the previous bar's"
        if steps[bad[0]] == 0:
            repeated = all(v[i] == v[i - 1] for v in self.values)
            raise BarFileError(f"{self.where(row)}: timestamp {self.shown(row)} duplicates {whose} "
                               f"({self.where(prev)}){'; the whole row is repeated' if repeated else ''}. "
                               "Each bar must appear once")
        raise BarFileError(f"{self.where(row)}: timestamp {self.shown(row)} is earlier than {whose} "
                           f"({self.shown(prev)}, {self.where(prev)}); bars must be in time order")

    def check_grid(self, timeframe: str, period: int) -> None:
        steps = np.diff(self.ts)
        close = np.flatnonzero(steps < period)
        if len(close):
            i = int(close[0]) + 1
            raise BarFileError(f"{self.where(self.row(i))}: bars {steps[i - 1] / NS_PER_SECOND:g}s apart are closer "
                               f"than the timeframe {timeframe}")
        off = np.flatnonzero(steps % period != 0)
        if len(off):
            i = int(off[0]) + 1
            row, prev = self.row(i), self.row(i - 1)
            raise BarFileError(f"{self.where(row)}: timestamp {self.shown(row)} is {steps[i - 1] / NS_PER_SECOND:g}s "
                               f"after the previous {self.symbol} bar's ({self.shown(prev)}), not a whole number of "
                               f"{timeframe} bars: the bars are not on one {timeframe} grid (pass --timeframe if "
                               "the bars are of another length)")


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (every cell as written) or Parquet file as a DataFrame; BarFileError names what is wrong with it."""
    try:
        if is_parquet(path):
            # nullable types: an integer column with nulls (an export's end_ts) keeps its exact nanoseconds
            return pd.read_parquet(path, dtype_backend="numpy_nullable")
        # every cell as written (no NA guessing): an empty cell is reported as empty, not as a number
        return pd.read_csv(path, skip_blank_lines=False, keep_default_na=False, low_memory=False)
    except FileNotFoundError:
        raise BarFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BarFileError(f"{path}: is a folder, not a data file") from None
    except pd.errors.EmptyDataError:
        raise BarFileError(f"{path}: the file is empty; expected a header {','.join(COLUMNS)}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BarFileError(f"{path}: not a readable CSV file ({exc})") from None
    except OSError as exc:
        if is_parquet(path) and exc.errno is None:  # pyarrow's complaint about the bytes, not the file system's
            raise BarFileError(f"{path}: not a readable Parquet file ({exc})") from None
        raise BarFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:  # pyarrow's ArrowInvalid: not Parquet, or a damaged file
        raise BarFileError(f"{path}: not a readable {'Parquet' if is_parquet(path) else 'CSV'} file ({exc})") from None


def _parse(path: Path, symbol: str | None, default_symbol: str | None) -> list[_Series]:
    """The file's rows checked one by one (numbers, prices, timestamps), then split by symbol and checked in order."""
    raw = read_table(path)
    header = [str(c).strip().lower() for c in raw.columns]
    raw.columns = header
    head = f"{path}:1" if not is_parquet(path) else f"{path}"
    times = [c for c in ("timestamp", *TIME_ALIASES) if c in header]
    if len(times) > 1:
        raise BarFileError(f"{head}: columns {' and '.join(times)} both look like the timestamp; keep one, or name "
                           "the bars' opening time 'timestamp'")
    missing = [c for c in COLUMNS[1:] if c not in header]
    if not times or missing:
        missing = ([] if times else ["timestamp"]) + missing
        raise BarFileError(f"{head}: missing column(s) {', '.join(missing)}; the header must name "
                           f"{','.join(COLUMNS)} (found {','.join(header)})")
    time_column = times[0]
    where = locator(path)
    raw = _drop_blank_lines(raw, [time_column, *COLUMNS[1:]], where)
    if len(raw) == 0:
        raise BarFileError(f"{path}: no bars after the header")

    values = {column: _numbers(raw[column], column, where) for column in COLUMNS[1:]}
    ts = parse_timestamps(raw[time_column], where)
    for column in PRICES:
        bad = np.flatnonzero(values[column] <= 0)
        if len(bad):
            raise BarFileError(f"{where(bad[0])}: {column} {values[column][bad[0]]:g} is not a positive price")
    bad = np.flatnonzero(values["volume"] < 0)
    if len(bad):
        raise BarFileError(f"{where(bad[0])}: volume {values['volume'][bad[0]]:g} is negative")
    high, low = values["high"], values["low"]
    bad = np.flatnonzero(high < low)
    if len(bad):
        i = bad[0]
        raise BarFileError(f"{where(i)}: high {high[i]:g} is below low {low[i]:g}")
    for column in ("open", "close"):
        outside = np.flatnonzero((values[column] > high) | (values[column] < low))
        if len(outside):
            i = outside[0]
            raise BarFileError(f"{where(i)}: {column} {values[column][i]:g} is outside low {low[i]:g} .. "
                               f"high {high[i]:g}")

    shown_column = raw[time_column]

    def shown(i: int) -> str:
        value = shown_column.iloc[i]
        return utc_text(int(ts[i])) if isinstance(value, pd.Timestamp) else str(value).strip()

    columns = tuple(values[c] for c in COLUMNS[1:])
    if "symbol" not in header:
        symbol = symbol or default_symbol
        if symbol is None:
            raise BarFileError(f"{head}: no symbol column; say whose bars these are (--symbol, or --data "
                               f"SYMBOL={path})")
        series = [_Series(path, symbol, ts, columns, None, where, shown)]
    else:
        series = _by_symbol(path, raw["symbol"], symbol, ts, columns, where, shown)
    for s in series:
        s.check_order()
    return series


def _by_symbol(path: Path, column: pd.Series, symbol: str | None, ts: np.ndarray, columns: tuple[np.ndarray, ...],
               where: Where, shown: Callable[[int], str]) -> list[_Series]:
    names = column.astype("string").str.strip()
    empty = np.flatnonzero((names == "").to_numpy(dtype=bool, na_value=True))
    if len(empty):
        raise BarFileError(f"{where(empty[0])}: symbol is empty")
    codes, uniques = pd.factorize(names)
    wanted = list(range(len(uniques)))
    if symbol is not None:
        if symbol not in set(uniques):
            raise BarFileError(f"{path}: no bars of {symbol}; its symbol column names {', '.join(map(str, uniques))}")
        wanted = [list(uniques).index(symbol)]
    out = []
    for k in wanted:
        rows = np.flatnonzero(codes == k)
        out.append(_Series(path, str(uniques[k]), ts[rows], tuple(c[rows] for c in columns), rows, where, shown))
    return out


def _drop_blank_lines(raw: pd.DataFrame, columns: list[str], where: Where) -> pd.DataFrame:
    """Blank lines at the end of a file are harmless; one between bars is an error (a bar may be lost there)."""
    if any(pd.api.types.is_numeric_dtype(raw[c]) for c in columns):
        return raw  # a blank line leaves an empty cell in every column: no column would have parsed as numbers
    blank = np.logical_and.reduce([(raw[c].astype("string").str.strip() == "").to_numpy(dtype=bool, na_value=True)
                                   for c in columns])
    if not blank.any():
        return raw
    data = np.flatnonzero(~blank)
    keep = int(data[-1]) + 1 if len(data) else 0
    inner = np.flatnonzero(blank[:keep])
    if len(inner):
        raise BarFileError(f"{where(inner[0])}: empty line between bars")
    return raw.iloc[:keep]


def _numbers(column: pd.Series, name: str, where: Where) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = column.to_numpy(dtype=float, na_value=np.nan)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if len(bad):
            i = bad[0]
            raise BarFileError(f"{where(i)}: {name} is missing (empty or NaN)" if np.isnan(numbers[i]) else
                               f"{where(i)}: {name} is {float(numbers[i])!r}, not a finite number")
        return numbers
    text = column.astype("string").str.strip()
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        i = bad[0]
        shown = text.iloc[i]
        raise BarFileError(f"{where(i)}: {name} is {shown!r}, not a finite number" if isinstance(shown, str) and shown
                           else f"{where(i)}: {name} is empty")
    return numbers


def parse_timestamps(column: pd.Series, where: Where) -> np.ndarray:
    """Integer nanoseconds since the epoch, UTC."""
    missing = np.flatnonzero(column.isna().to_numpy())
    if len(missing):
        raise BarFileError(f"{where(missing[0])}: timestamp is empty")
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(column):
        stamps = column.dt.tz_convert("UTC").dt.tz_localize(None) if isinstance(column.dtype, pd.DatetimeTZDtype) \
            else column
        return _as_ns(stamps, where)
    if pd.api.types.is_integer_dtype(column):
        return _epoch(column.to_numpy(dtype=np.int64), column, where)
    if pd.api.types.is_float_dtype(column):
        numbers = column.to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.floor(numbers)))
        if len(bad):
            raise BarFileError(f"{where(bad[0])}: timestamp {float(numbers[bad[0]])!r} is not a whole number of epoch "
                               "seconds, milliseconds, microseconds or nanoseconds")
        return _epoch(numbers.astype(np.int64), column, where)
    text = column.astype("string").str.strip()
    empty = np.flatnonzero((text == "").to_numpy(dtype=bool, na_value=True))
    if len(empty):
        raise BarFileError(f"{where(empty[0])}: timestamp is empty")
    if _DIGITS.fullmatch(str(text.iloc[0])):
        numbers = pd.to_numeric(text, errors="coerce")
        bad = np.flatnonzero(numbers.isna().to_numpy() | ~text.str.fullmatch(_DIGITS.pattern).to_numpy(dtype=bool))
        if len(bad):
            raise BarFileError(f"{where(bad[0])}: timestamp {text.iloc[bad[0]]!r} is not a whole epoch number like "
                               f"the first row's ({text.iloc[0]}); use one format for the whole file")
        return _epoch(numbers.to_numpy(dtype=np.int64), text, where)
    try:
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    except (ValueError, OverflowError) as exc:
        raise BarFileError(f"{where(0)}: timestamps cannot be read as ISO 8601 ({exc})") from None
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = bad[0]
        raise BarFileError(f"{where(i)}: timestamp {text.iloc[i]!r} is neither ISO 8601 (2024-01-01T00:00:00) nor "
                           "whole epoch seconds/milliseconds/microseconds/nanoseconds")
    return _as_ns(parsed.dt.tz_localize(None), where)


def _as_ns(stamps: pd.Series, where: Where) -> np.ndarray:
    try:
        return stamps.dt.as_unit("ns").to_numpy().view(np.int64)
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        latest = np.flatnonzero((stamps > pd.Timestamp.max).to_numpy() | (stamps < pd.Timestamp.min).to_numpy())
        i = int(latest[0]) if len(latest) else 0
        raise BarFileError(f"{where(i)}: timestamp {stamps.iloc[i]} is outside the years 1677..2262 paperdesk "
                           "holds") from None


def _epoch(numbers: np.ndarray, shown: pd.Series, where: Where) -> np.ndarray:
    """Epoch numbers to nanoseconds: the unit by magnitude, the same for every row."""
    units = np.searchsorted(_EPOCH_LIMITS, np.abs(numbers), side="right")
    first = int(units[0])
    bad = np.flatnonzero(units != first)
    if len(bad):
        i = bad[0]
        raise BarFileError(f"{where(i)}: timestamp {shown.iloc[i]} looks like epoch {_EPOCH_NAMES[units[i]]}, the "
                           f"first row's ({shown.iloc[0]}) like epoch {_EPOCH_NAMES[first]}; use one unit")
    scale = _EPOCH_SCALE[first]
    limit = np.iinfo(np.int64).max // scale
    over = np.flatnonzero(np.abs(numbers) > limit)
    if len(over):
        raise BarFileError(f"{where(over[0])}: timestamp {shown.iloc[over[0]]} epoch {_EPOCH_NAMES[first]} is after "
                           "the year 2262, the latest time paperdesk holds")
    return numbers * scale
