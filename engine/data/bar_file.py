"""OHLCV files: validated strictly, because a silently "fixed" bar would fake a backtest.

Columns: timestamp, open, high, low, close, volume. Timestamps are ISO 8601 (naive means UTC) or
integer epoch seconds / milliseconds / nanoseconds. Every problem is reported with its line number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # pandas ships no types and pandas-stubs is not a dependency

from engine.clock import NS_PER_SECOND
from engine.data.bars import timeframe_ns
from engine.model.market import Bar

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")


class BarFileError(ValueError):
    """A bar file that cannot be used as it is; the message names the file, line and value."""


def timeframe_of(ns: int) -> str:
    """The shortest timeframe string for a span of whole seconds ('60s' -> '1m')."""
    seconds = ns // NS_PER_SECOND
    if seconds <= 0 or seconds * NS_PER_SECOND != ns:
        raise ValueError(f"bar spacing of {ns} ns is not a whole number of seconds")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class BarFile:
    """A validated bar file held as columns; bars() yields Bar values lazily."""

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

    def __len__(self) -> int:
        return len(self.ts)

    def bars(self) -> Iterator[Bar]:
        symbol, timeframe, period = self.symbol, self.timeframe, self.period_ns
        for ts, o, h, lo, c, v in zip(self.ts.tolist(), self.open.tolist(), self.high.tolist(),
                                      self.low.tolist(), self.close.tolist(), self.volume.tolist(),
                                      strict=True):
            yield Bar(ts, symbol, timeframe, o, h, lo, c, v, ts + period)


def load_bar_file(path: str | Path, symbol: str, timeframe: str | None = None) -> BarFile:
    """Read and validate an OHLCV CSV; timeframe defaults to the smallest spacing between bars."""
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, skip_blank_lines=False, keep_default_na=False)
    except FileNotFoundError:
        raise BarFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise BarFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BarFileError(f"{path}: not a readable CSV file ({exc})") from None
    except pd.errors.EmptyDataError:
        raise BarFileError(f"{path}: the file is empty; expected a header {','.join(COLUMNS)}") from None
    header = [c.strip().lower() for c in raw.columns]
    raw.columns = header
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise BarFileError(f"{path}:1: missing column(s) {', '.join(missing)}; "
                           f"the header must name {','.join(COLUMNS)} (found {','.join(header)})")

    def line(i: int) -> int:
        return int(i) + 2  # 1-based, after the header

    blank = (raw[list(COLUMNS)] == "").all(axis=1).to_numpy()
    if blank.any():
        last_data = np.flatnonzero(~blank)
        keep = int(last_data[-1]) + 1 if len(last_data) else 0
        raw = raw.iloc[:keep]  # blank lines at the end of a file are harmless
        blank = blank[:keep]
        if blank.any():
            raise BarFileError(f"{path}:{line(np.flatnonzero(blank)[0])}: empty line between bars")
    if len(raw) == 0:
        raise BarFileError(f"{path}: no bars after the header")

    values: dict[str, np.ndarray] = {}
    for column in COLUMNS[1:]:
        text = raw[column].str.strip()
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if len(bad):
            i = bad[0]
            shown = text.iloc[i]
            raise BarFileError(f"{path}:{line(i)}: {column} is {shown!r}, not a finite number"
                               if shown else f"{path}:{line(i)}: {column} is empty")
        values[column] = numbers
    ts = _timestamps(path, raw["timestamp"].str.strip(), line)

    for column in PRICES:
        bad = np.flatnonzero(values[column] <= 0)
        if len(bad):
            i = bad[0]
            raise BarFileError(f"{path}:{line(i)}: {column} {values[column][i]:g} is not a positive price")
    bad = np.flatnonzero(values["volume"] < 0)
    if len(bad):
        raise BarFileError(f"{path}:{line(bad[0])}: volume {values['volume'][bad[0]]:g} is negative")
    high, low = values["high"], values["low"]
    bad = np.flatnonzero(high < low)
    if len(bad):
        i = bad[0]
        raise BarFileError(f"{path}:{line(i)}: high {high[i]:g} is below low {low[i]:g}")
    for column in ("open", "close"):
        outside = np.flatnonzero((values[column] > high) | (values[column] < low))
        if len(outside):
            i = outside[0]
            raise BarFileError(f"{path}:{line(i)}: {column} {values[column][i]:g} is outside "
                               f"low {low[i]:g} .. high {high[i]:g}")
    steps = np.diff(ts)
    bad = np.flatnonzero(steps <= 0)
    if len(bad):
        i = bad[0] + 1
        what = "duplicates" if steps[bad[0]] == 0 else "is earlier than"
        raise BarFileError(f"{path}:{line(i)}: timestamp {raw['timestamp'].iloc[i].strip()} {what} "
                           f"the previous bar's ({raw['timestamp'].iloc[i - 1].strip()})")
    if timeframe is None:
        if len(ts) < 2:
            raise BarFileError(f"{path}: one bar is not enough to infer the timeframe; pass --timeframe")
        period = int(steps.min())
        try:
            timeframe = timeframe_of(period)
        except ValueError as exc:
            raise BarFileError(f"{path}: {exc}; pass --timeframe") from None
    else:
        try:
            period = timeframe_ns(timeframe)
        except ValueError as exc:
            raise BarFileError(str(exc)) from None
        if len(steps) and int(steps.min()) < period:
            i = int(np.argmin(steps)) + 1
            raise BarFileError(f"{path}:{line(i)}: bars {steps.min() / NS_PER_SECOND:g}s apart are closer "
                               f"than the timeframe {timeframe}")
    return BarFile(path, symbol, timeframe, period, ts, values["open"], high, low, values["close"],
                   values["volume"])


def _timestamps(path: Path, text: pd.Series, line: Callable[[int], int]) -> np.ndarray:
    empty = np.flatnonzero((text == "").to_numpy())
    if len(empty):
        raise BarFileError(f"{path}:{line(empty[0])}: timestamp is empty")
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().all():
        n = numeric.to_numpy(dtype=np.int64)
        magnitude = int(np.abs(n).max())
        unit = NS_PER_SECOND if magnitude < 10**11 else 1_000_000 if magnitude < 10**14 else 1
        return n * unit
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = bad[0]
        raise BarFileError(f"{path}:{line(i)}: timestamp {text.iloc[i]!r} is neither ISO 8601 "
                           "(2024-01-01T00:00:00) nor epoch seconds/milliseconds")
    return parsed.astype("int64").to_numpy() if parsed.dtype.unit == "ns" else \
        parsed.dt.as_unit("ns").astype("int64").to_numpy()
