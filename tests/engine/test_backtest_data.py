"""The backtest's data: bar files (CSV and Parquet, one or several symbols) and market data files, checked before
anything runs; each bad row named by file, line (CSV) or row (Parquet) and column. Real files in tmp_path."""

import numpy as np
import pandas as pd
import pytest

from engine.backtest import BacktestInputError, DataSpec, plan_backtest, run_backtest
from engine.config import ConfigError
from engine.data.bar_file import BarFileError, load_bar_file, load_bar_files
from engine.data.market_file import load_market_file
from engine.model.market import Bar, BookSnapshot, Heartbeat, TradeTick
from engine.model.order import OrderSide
from tests.conftest import make_config

HEADER = ["timestamp", "open", "high", "low", "close", "volume"]
GOOD = [["2024-01-01T00:00:00", 100, 101, 99, 100.5, 3],
        ["2024-01-01T00:01:00", 100.5, 102, 100, 101, 4],
        ["2024-01-01T00:02:00", 101, 101.5, 100.2, 100.8, 5]]
MINUTE = 60 * 10**9
JAN1 = 1704067200 * 10**9


def write_csv(path, rows, header=HEADER):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def write_parquet(path, rows, header=HEADER):
    frame = pd.DataFrame([list(r) for r in rows], columns=header)
    for column in frame.columns:  # a column holding text and numbers is a text column in Parquet
        values = frame[column].dropna()
        if values.map(lambda v: isinstance(v, str)).any():
            frame[column] = frame[column].map(lambda v: None if pd.isna(v) else str(v))
    frame.to_parquet(path, index=False)
    return path


def bars_frame(n, seed=3, start="2024-01-01", symbol=None):
    rng = np.random.default_rng(seed)
    close = 30000 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[30000.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.001, n)) * close
    frame = pd.DataFrame({
        "timestamp": pd.date_range(start, periods=n, freq="1min").strftime("%Y-%m-%dT%H:%M:%S"),
        "open": open_.round(2), "high": (np.maximum(open_, close) + spread).round(2),
        "low": (np.minimum(open_, close) - spread).round(2), "close": close.round(2),
        "volume": rng.gamma(2.0, 5.0, n).round(4)})
    if symbol is not None:
        frame.insert(1, "symbol", symbol)
    return frame


def outcome(result):
    engine = result.engine
    return (result.events, [(d.ts, d.strategy, d.symbol, d.signal, d.reason) for d in engine.decisions],
            [(f.ts, f.symbol, f.side, f.qty, f.price, f.fee) for f in engine.fills], engine.account.equity())


# ---- each bad row: its file, line or row, and column --------------------------------------------------------------

BAD_ROWS = [
    ("a price that is not a number", [GOOD[0], [GOOD[1][0], 100.5, "abc", 100, 101, 4], GOOD[2]],
     "{at2}: high is 'abc', not a finite number"),
    ("a missing value", [GOOD[0], [GOOD[1][0], 100.5, 102, 100, "", 4], GOOD[2]], "{at2}: close is empty"),
    ("high below low", [GOOD[0], [GOOD[1][0], 100.5, 99, 100, 101, 4], GOOD[2]], "{at2}: high 99 is below low 100"),
    ("open above high", [GOOD[0], [GOOD[1][0], 103, 102, 100, 101, 4], GOOD[2]],
     "{at2}: open 103 is outside low 100 .. high 102"),
    ("a negative price", [GOOD[0], GOOD[1], [GOOD[2][0], -101, 101.5, -102, 100.8, 5]],
     "{at3}: open -101 is not a positive price"),
    ("a negative volume", [GOOD[0], [GOOD[1][0], 100.5, 102, 100, 101, -4]], "{at2}: volume -4 is negative"),
    ("unsorted timestamps", [GOOD[0], GOOD[2], GOOD[1]],
     "{at3}: timestamp 2024-01-01T00:01:00 is earlier than the previous bar's (2024-01-01T00:02:00, {at2})"),
    ("a duplicated timestamp", [GOOD[0], GOOD[1], [GOOD[1][0], 101, 101.5, 100.2, 100.8, 5]],
     "{at3}: timestamp 2024-01-01T00:01:00 duplicates the previous bar's ({at2}). Each bar must appear once"),
    ("a duplicated row", [GOOD[0], GOOD[1], GOOD[1]],
     "{at3}: timestamp 2024-01-01T00:01:00 duplicates the previous bar's ({at2}); the whole row is repeated"),
    ("a bar off the grid", [GOOD[0], GOOD[1], ["2024-01-01T00:02:30", 101, 101.5, 100.2, 100.8, 5]],
     "{at3}: timestamp 2024-01-01T00:02:30 is 90s after the previous BTC/USDT bar's (2024-01-01T00:01:00), not a "
     "whole number of 1m bars"),
    ("a timestamp that is no time", [GOOD[0], ["yesterday", 100.5, 102, 100, 101, 4]],
     "{at2}: timestamp 'yesterday' is neither ISO 8601"),
    ("a missing timestamp", [GOOD[0], ["", 100.5, 102, 100, 101, 4]], "{at2}: timestamp is empty"),
]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(("case", "rows", "expected"), BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_each_bad_row_is_named_by_file_row_and_column(tmp_path, fmt, case, rows, expected):
    path = tmp_path / f"bars.{fmt}"
    if fmt == "csv":
        write_csv(path, rows)
        at = {f"at{k}": f"{path}:{k + 1}" for k in (2, 3)}  # the header is line 1
    else:
        # as a Parquet writer keeps them: text columns stay text, a missing cell is null
        write_parquet(path, [[None if v == "" else v for v in r] for r in rows])
        at = {f"at{k}": f"{path} row {k}" for k in (2, 3)}
    message = expected.format(**at)
    if fmt == "parquet" and case == "a missing value":
        message = f"{path} row 2: close is missing (empty or NaN)"
    if fmt == "parquet" and case == "a price that is not a number":
        message = f"{path} row 2: high is 'abc', not a finite number"
    with pytest.raises(BarFileError) as info:
        load_bar_file(path, "BTC/USDT")
    assert message in str(info.value)


@pytest.mark.parametrize(("rows", "header", "expected"), [
    (GOOD, ["timestamp", "open", "high", "close", "volume"], "bars.csv:1: missing column(s) low"),
    (GOOD, ["time", "open", "high", "low", "close", "volume"], None),  # `time` is taken for the timestamp
    ([["2024-01-01T00:00:00", "2024-01-01T00:00:00", *r[1:]] for r in GOOD],
     ["timestamp", "date", "open", "high", "low", "close", "volume"], "columns timestamp and date both look like"),
    ([[1704067200, 100, 101, 99, 100.5, 3], [1704067260000, 100.5, 102, 100, 101, 4]], HEADER,
     "bars.csv:3: timestamp 1704067260000 looks like epoch milliseconds, the first row's (1704067200) like epoch "
     "seconds; use one unit"),
    ([[1704067200.5, 100, 101, 99, 100.5, 3], [1704067260, 100.5, 102, 100, 101, 4]], HEADER,
     "bars.csv:2: timestamp 1704067200.5 is not a whole number of epoch"),
    ([GOOD[0], ["", "", "", "", "", ""], GOOD[2]], HEADER, "bars.csv:3: empty line between bars"),
    ([[GOOD[0][0], "BTC/USDT", *GOOD[0][1:]], [GOOD[1][0], "", *GOOD[1][1:]]],
     ["timestamp", "symbol", "open", "high", "low", "close", "volume"], "bars.csv:3: symbol is empty"),
])
def test_bad_files_say_what_is_wrong_where(tmp_path, rows, header, expected):
    path = write_csv(tmp_path / "bars.csv", rows, header)
    if expected is None:
        assert len(load_bar_file(path, "BTC/USDT")) == 3
        return
    with pytest.raises(BarFileError) as info:
        load_bar_file(path, "BTC/USDT")
    assert expected in str(info.value)


def test_a_parquet_nan_and_a_file_that_is_not_parquet(tmp_path):
    path = write_parquet(tmp_path / "bars.parquet", [GOOD[0], [GOOD[1][0], 100.5, 102, 100, float("nan"), 4]])
    with pytest.raises(BarFileError, match=r"bars.parquet row 2: close is missing \(empty or NaN\)"):
        load_bar_file(path, "BTC/USDT")
    fake = tmp_path / "fake.parquet"
    fake.write_text("timestamp,open\n")
    with pytest.raises(BarFileError, match="fake.parquet: not a readable Parquet file"):
        load_bar_file(fake, "BTC/USDT")


def test_one_symbol_in_two_files_is_refused(tmp_path):
    a = write_csv(tmp_path / "a.csv", GOOD)
    b = write_csv(tmp_path / "b.csv", GOOD)
    with pytest.raises(BarFileError, match="b.csv: BTC/USDT has bars in .*a.csv too"):
        load_bar_files([(a, "BTC/USDT"), (b, "BTC/USDT")])


# ---- timestamps ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stamps", [
    ["2024-01-01T00:00:00", "2024-01-01T00:01:00"],                 # ISO, naive: UTC
    ["2024-01-01 00:00:00Z", "2024-01-01 00:01:00Z"],
    ["2024-01-01T01:00:00+01:00", "2024-01-01T01:01:00+01:00"],     # an offset is converted to UTC
    [1704067200, 1704067260],                                       # epoch seconds
    [1704067200000, 1704067260000],                                 # milliseconds
    [1704067200000000, 1704067260000000],                           # microseconds
    [1704067200000000000, 1704067260000000000],                     # nanoseconds
])
def test_accepted_timestamps_all_mean_the_same_time(tmp_path, stamps):
    rows = [[t, *r[1:]] for t, r in zip(stamps, GOOD, strict=False)]
    bars = load_bar_file(write_csv(tmp_path / "bars.csv", rows), "BTC/USDT")
    assert list(bars.ts) == [JAN1, JAN1 + MINUTE] and bars.timeframe == "1m"


@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Paris"])
def test_parquet_timestamp_columns(tmp_path, tz):
    frame = pd.DataFrame([r[1:] for r in GOOD], columns=HEADER[1:])
    stamps = pd.date_range("2024-01-01", periods=3, freq="1min", tz="UTC")
    frame.insert(0, "timestamp", stamps if tz == "UTC" else stamps.tz_convert(tz) if tz else stamps.tz_localize(None))
    frame.to_parquet(tmp_path / "bars.parquet")
    bars = load_bar_file(tmp_path / "bars.parquet", "BTC/USDT")
    assert list(bars.ts) == [JAN1 + i * MINUTE for i in range(3)]


# ---- gaps ---------------------------------------------------------------------------------------------------------

def gapped(tmp_path):
    frame = bars_frame(100)
    frame = frame.drop(index=[40, 41, 42, 70])  # 3 bars missing after line 41 (bar 39), one after line 71
    path = tmp_path / "gapped.csv"
    frame.to_csv(path, index=False)
    return path


def test_gaps_are_a_warning_naming_the_first_ones(tmp_path):
    path = gapped(tmp_path)
    bars = load_bar_file(path, "BTC/USDT")
    gaps = bars.gaps()
    assert (gaps.count, gaps.missing) == (2, 4)
    assert gaps.first[0].where == f"{path}:42" and gaps.first[0].missing == 3
    result = run_backtest(make_config(), path, "sma_crossover", {"fast": 3, "slow": 8, "size": 0.01})
    assert result.events == 96
    warning, = [w for w in result.warnings if "missing" in w]
    assert "BTC/USDT 2 gaps (4 bars)" in warning
    assert f"{path}:42: BTC/USDT: 3 1m bars missing between 2024-01-01 00:39:00 and 2024-01-01 00:43:00" in warning
    assert f"{path}:69: BTC/USDT: 1 1m bar missing" in warning
    assert "--gaps error refuses" in warning


def test_gaps_error_refuses_gapped_data(tmp_path):
    path = gapped(tmp_path)
    with pytest.raises(BarFileError, match=r"bars are missing from the 1m series: BTC/USDT 2 gaps \(4 bars\).*"
                                           r"pass --gaps warn"):
        run_backtest(make_config(), path, "sma_crossover", gaps="error")


def test_nothing_is_saved_from_bad_data(tmp_path):
    bad = write_csv(tmp_path / "bad.csv", [GOOD[0], [GOOD[1][0], 100.5, 99, 100, 101, 4]])
    db = tmp_path / "out.sqlite"
    with pytest.raises(BarFileError):
        run_backtest(make_config(), bad, "sma_crossover", database=db)
    assert not db.exists()
    with pytest.raises(BarFileError):
        run_backtest(make_config(), gapped(tmp_path), "sma_crossover", gaps="error", database=db)
    assert not db.exists()


# ---- CSV and Parquet, one and several symbols -------------------------------------------------------------------

SMA = {"fast": 5, "slow": 20, "size": 0.05}


def test_csv_and_parquet_give_identical_results(tmp_path):
    frame = bars_frame(800)
    frame.to_csv(tmp_path / "bars.csv", index=False)
    frame.to_parquet(tmp_path / "bars.parquet", index=False)
    csv = run_backtest(make_config(), tmp_path / "bars.csv", "sma_crossover", SMA)
    parquet = run_backtest(make_config(), tmp_path / "bars.parquet", "sma_crossover", SMA)
    assert len(csv.engine.fills) > 5
    assert outcome(csv)[1:] == outcome(parquet)[1:] and csv.events == parquet.events == 800
    config_run = run_backtest(make_config(), tmp_path / "bars.parquet")  # the config's sma_btc on BTC/USDT
    assert [s.name for s in config_run.engine.strategies.values()] == ["sma_btc"]


def test_several_symbols_from_one_file_or_one_file_each(tmp_path):
    btc, eth = bars_frame(300, seed=1, symbol="BTC/USDT"), bars_frame(300, seed=2, symbol="ETH/USDT")
    eth[["open", "high", "low", "close"]] /= 10
    # one long file, rows of one time in either order
    pd.concat([eth, btc]).sort_values("timestamp", kind="stable").to_csv(tmp_path / "both.csv", index=False)
    pd.concat([btc, eth]).to_parquet(tmp_path / "both.parquet", index=False)
    btc.drop(columns="symbol").to_csv(tmp_path / "btc.csv", index=False)
    eth.drop(columns="symbol").to_csv(tmp_path / "eth.csv", index=False)
    config = make_config()
    long_csv = run_backtest(config, tmp_path / "both.csv")
    long_parquet = run_backtest(config, tmp_path / "both.parquet")
    separate = run_backtest(config, [DataSpec.parse(f"ETH/USDT={tmp_path / 'eth.csv'}"),
                                     DataSpec.parse(f"BTC/USDT={tmp_path / 'btc.csv'}")])
    assert long_csv.events == 600
    assert sorted(s.name for s in long_csv.engine.strategies.values()) == ["rsi_eth", "sma_btc"]
    assert any("left out, no bars of their symbols: bb_sol" in n for n in long_csv.notes)
    assert outcome(long_csv) == outcome(long_parquet) == outcome(separate)
    assert {d.symbol for d in long_csv.engine.decisions} == {"BTC/USDT", "ETH/USDT"}
    only_eth = run_backtest(config, tmp_path / "both.csv", symbol="ETH/USDT")
    assert only_eth.events == 300 and list(only_eth.engine.strategies) == ["rsi_eth"]


def test_a_symbol_the_config_does_not_list(tmp_path):
    frame = bars_frame(50, symbol="DOGE/USDT")
    frame.to_csv(tmp_path / "doge.csv", index=False)
    with pytest.raises(BacktestInputError, match="doge.csv: DOGE/USDT is not an instrument in the config"):
        run_backtest(make_config(), tmp_path / "doge.csv")


def test_a_bad_parameter_is_a_config_error(tmp_path):
    bars_frame(50).to_csv(tmp_path / "bars.csv", index=False)
    with pytest.raises(ConfigError, match="fast"):
        run_backtest(make_config(), tmp_path / "bars.csv", "sma_crossover", {"fast": 0})


# ---- --from / --to ------------------------------------------------------------------------------------------------

def test_from_and_to_keep_the_bars_opening_in_between(tmp_path):
    bars_frame(600).to_csv(tmp_path / "bars.csv", index=False)
    start, end = JAN1 + 100 * MINUTE, JAN1 + 400 * MINUTE
    part = run_backtest(make_config(), tmp_path / "bars.csv", "sma_crossover", SMA, start_ns=start, end_ns=end)
    assert part.events == 300
    decisions = part.engine.decisions
    assert decisions[0].ts == start + MINUTE and decisions[-1].ts == end  # decided at each bar's close
    assert part.engine.fills and all(start < f.ts <= end for f in part.engine.fills)
    with pytest.raises(BacktestInputError, match="no bars open between 2024-02-01 00:00:00 and the end; the data "
                                                 "covers .*bars.csv BTC/USDT 2024-01-01 00:00:00 .. 2024-01-01 09:59"):
        run_backtest(make_config(), tmp_path / "bars.csv", start_ns=JAN1 + 31 * 24 * 60 * MINUTE)
    with pytest.raises(BacktestInputError, match="--from 2024-01-01 06:40:00 is not before --to"):
        plan_backtest(make_config(), tmp_path / "bars.csv", start_ns=end, end_ns=start)


# ---- market data files: trades and books ------------------------------------------------------------------------

def test_a_market_data_file_of_trades_books_and_bars(tmp_path):
    rows = [
        {"ts": JAN1, "symbol": "BTC/USDT", "kind": "book", "bids": "[[99.5,1.0],[99.0,2.5]]", "asks": "[[100.5,0.7]]"},
        {"ts": JAN1 + 1, "symbol": "BTC/USDT", "kind": "trade", "price": 100.5, "size": 0.25, "side": "BUY"},
        {"ts": JAN1 + 2, "symbol": "", "kind": "clock"},
        {"ts": JAN1 - MINUTE + 3, "symbol": "BTC/USDT", "kind": "bar", "timeframe": "1m", "open": 100.0,
         "high": 101.0, "low": 99.0, "close": 100.5, "volume": 12.0, "end_ts": JAN1 + 3},
    ]
    frame = pd.DataFrame(rows)
    frame["end_ts"] = pd.array([r.get("end_ts") for r in rows], dtype="Int64")  # nanoseconds do not fit a float
    frame.to_csv(tmp_path / "md.csv", index=False)
    frame.to_parquet(tmp_path / "md.parquet", index=False)
    expected = [BookSnapshot(JAN1, "BTC/USDT", ((99.5, 1.0), (99.0, 2.5)), ((100.5, 0.7),)),
                TradeTick(JAN1 + 1, "BTC/USDT", 100.5, 0.25, OrderSide.BUY), Heartbeat(JAN1 + 2),
                Bar(JAN1 - MINUTE + 3, "BTC/USDT", "1m", 100.0, 101.0, 99.0, 100.5, 12.0, JAN1 + 3)]
    assert load_market_file(tmp_path / "md.csv").events == expected
    assert load_market_file(tmp_path / "md.parquet").events == expected


@pytest.mark.parametrize(("row", "expected"), [
    ({"kind": "quote"}, "md.csv:3: kind is 'quote'; expected one of trade, book, bar, warmup, clock"),
    ({"side": "UP"}, "md.csv:3: side is 'UP'; a trade's side is BUY or SELL"),
    ({"price": "x"}, "md.csv:3: price is 'x', not a finite number"),
    ({"size": -1}, "md.csv:3: size -1 is not positive"),
    ({"ts": JAN1 - 5}, "md.csv:3: event time 1704067199999999995 is earlier than the previous event's"),
])
def test_bad_market_data_rows(tmp_path, row, expected):
    good = {"ts": JAN1, "symbol": "BTC/USDT", "kind": "trade", "price": 100.0, "size": 1.0, "side": "SELL"}
    pd.DataFrame([good, {**good, **row}]).to_csv(tmp_path / "md.csv", index=False)
    with pytest.raises(BarFileError) as info:
        load_market_file(tmp_path / "md.csv")
    assert expected in str(info.value)
