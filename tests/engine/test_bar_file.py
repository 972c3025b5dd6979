"""Malformed bar files are rejected with their line number, never skipped or fixed."""

import pytest

from engine.data.bar_file import BarFileError, load_bar_file, timeframe_of
from engine.data.bars import BarBuilder, timeframe_ns
from engine.model.market import TradeTick
from engine.model.order import OrderSide
from tests.conftest import write_bars

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = ["2024-01-01T00:00:00,100,101,99,100.5,3",
        "2024-01-01T00:01:00,100.5,102,100,101,4",
        "2024-01-01T00:02:00,101,101.5,100.2,100.8,5"]


def csv(tmp_path, rows, header=HEADER):
    path = tmp_path / "bars.csv"
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def test_a_good_file_loads_with_its_timeframe(tmp_path):
    bars = load_bar_file(csv(tmp_path, GOOD), "BTC/USDT")
    assert len(bars) == 3 and bars.timeframe == "1m"
    first = next(bars.bars())
    assert (first.open, first.high, first.low, first.close, first.volume) == (100, 101, 99, 100.5, 3)
    assert first.end - first.ts == 60 * 10**9


def test_epoch_seconds_and_milliseconds_are_accepted(tmp_path):
    rows = ["1704067200,100,101,99,100.5,3", "1704067260,100.5,102,100,101,4"]
    seconds = load_bar_file(csv(tmp_path, rows), "BTC/USDT")
    rows_ms = ["1704067200000,100,101,99,100.5,3", "1704067260000,100.5,102,100,101,4"]
    millis = load_bar_file(csv(tmp_path, rows_ms), "BTC/USDT")
    assert list(seconds.ts) == list(millis.ts) == [1704067200 * 10**9, 1704067260 * 10**9]


@pytest.mark.parametrize(("rows", "header", "expected"), [
    (GOOD, "timestamp,open,high,close,volume\n", ":1: missing column(s) low"),
    ([GOOD[0], "2024-01-01T00:01:00,100.5,abc,100,101,4", GOOD[2]], HEADER, ":3: high is 'abc', not a finite number"),
    ([GOOD[0], "2024-01-01T00:01:00,100.5,102,100,,4", GOOD[2]], HEADER, ":3: close is empty"),
    ([GOOD[0], GOOD[1], "2024-01-01T00:02:00,-101,101.5,-102,100.8,5"], HEADER, ":4: open -101 is not a positive"),
    ([GOOD[0], "2024-01-01T00:01:00,100.5,99,100,101,4", GOOD[2]], HEADER, ":3: high 99 is below low 100"),
    ([GOOD[0], "2024-01-01T00:01:00,103,102,100,101,4", GOOD[2]], HEADER,
     ":3: open 103 is outside low 100 .. high 102"),
    ([GOOD[0], GOOD[2], GOOD[1]], HEADER, ":4: timestamp 2024-01-01T00:01:00 is earlier than"),
    ([GOOD[0], GOOD[1], GOOD[1]], HEADER, ":4: timestamp 2024-01-01T00:01:00 duplicates"),
    ([GOOD[0], "yesterday,100.5,102,100,101,4"], HEADER, ":3: timestamp 'yesterday' is neither ISO 8601"),
    ([GOOD[0], "2024-01-01T00:01:00,100.5,102,100,101,-4"], HEADER, ":3: volume -4 is negative"),
    ([GOOD[0], "", GOOD[2]], HEADER, ":3: empty line between bars"),
    ([GOOD[0], ",100.5,102,100,101,4"], HEADER, ":3: timestamp is empty"),
])
def test_malformed_files_name_the_line_and_the_problem(tmp_path, rows, header, expected):
    with pytest.raises(BarFileError) as info:
        load_bar_file(csv(tmp_path, rows, header), "BTC/USDT")
    assert expected in str(info.value)
    assert "bars.csv" in str(info.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(BarFileError, match="no such file"):
        load_bar_file(tmp_path / "nope.csv", "BTC/USDT")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(BarFileError, match="empty"):
        load_bar_file(tmp_path / "empty.csv", "BTC/USDT")


def test_a_given_timeframe_longer_than_the_spacing_is_refused(tmp_path):
    with pytest.raises(BarFileError, match="closer than the timeframe 5m"):
        load_bar_file(csv(tmp_path, GOOD), "BTC/USDT", timeframe="5m")


def test_generated_file_round_trips(tmp_path):
    bars = load_bar_file(write_bars(tmp_path / "b.csv", 500), "ETH/USDT")
    assert len(list(bars.bars())) == 500 and bars.symbol == "ETH/USDT"


def test_timeframes():
    assert timeframe_ns("1m") == 60 * 10**9 and timeframe_ns("4h") == 4 * 3600 * 10**9
    assert timeframe_of(60 * 10**9) == "1m" and timeframe_of(90 * 10**9) == "90s"
    assert timeframe_of(86400 * 10**9) == "1d"
    for bad in ("1", "m", "0m", "1w", "-1m", " 1m"):
        with pytest.raises(ValueError, match="timeframe"):
            timeframe_ns(bad)


def test_bars_built_from_trades_close_on_the_first_trade_of_the_next_period():
    builder = BarBuilder("BTC/USDT", "1m")
    s = 10**9
    prices = [(5, 100.0, 1.0), (20, 103.0, 2.0), (40, 98.0, 1.0), (59, 101.0, 0.5)]
    for t, p, q in prices:
        assert builder.update(TradeTick(t * s, "BTC/USDT", p, q, OrderSide.BUY)) is None
    bar = builder.update(TradeTick(61 * s, "BTC/USDT", 102.0, 1.0, OrderSide.SELL))
    assert (bar.ts, bar.end, bar.open, bar.high, bar.low, bar.close, bar.volume) == (0, 60 * s, 100, 103, 98, 101, 4.5)


def test_blank_lines_at_the_end_are_harmless(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + "\n".join(GOOD) + "\n\n\n")
    assert len(load_bar_file(path, "BTC/USDT")) == 3
