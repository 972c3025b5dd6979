"""Warm-up: a strategy declares its lookback, and a paper session on an exchange first feeds it that many of the
exchange's candles, so a 30-bar average does not wait 30 minutes. The decisions on them are recorded, marked, never
traded; they are saved as market data, so a resume and the twin backtest replay them.

The real ccxt.pro binance client against the loopback Binance fake, a real SQLite database, no network."""

from __future__ import annotations

import asyncio

import pandas as pd

from engine.config import parse_config
from engine.core import WARMUP_MARK
from engine.session import PaperSession
from engine.validation.validate import validate
from tests.fakes.binance import FakeBinance
from tests.venues.test_ccxt_paper_session import ccxt_config, paperdesk, query, tape

MINUTE_MS = 60_000


async def history(fake: FakeBinance, minutes: int) -> None:
    """Prints over the last `minutes` whole minutes: a falling then rising close, so the averages cross."""
    now = fake.now()
    first = now - now % MINUTE_MS - minutes * MINUTE_MS
    for i in range(minutes):
        close = 50_000 + (i - minutes // 2) ** 2
        for k in range(3):
            await fake.trade("BTC/USDT", str(close - 2 + k), "0.01", ts=first + i * MINUTE_MS + 10_000 * (k + 1))


def sma_config(fake: FakeBinance, timeframe: str = "1m", slow: int = 5):
    return parse_config(ccxt_config(fake.http_url, {
        "name": "sma_btc", "kind": "sma_crossover", "symbols": ["BTC/USDT"], "timeframe": timeframe,
        "params": {"fast": 2, "slow": slow, "size": 0.01}}))


async def test_a_strategy_is_warmed_up_on_the_exchange_s_candles_and_trades_none_of_them(fake, tmp_path):
    await history(fake, 10)
    db = tmp_path / "desk.sqlite"
    session = PaperSession(sma_config(fake), db_path=db)
    await session.open()
    engine = session.engine
    warm = [d for d in engine.decisions if d.reason.startswith(WARMUP_MARK)]
    assert len(warm) == 6  # lookback: slow + 1
    assert not engine.orders  # nothing traded on history, whatever the averages said
    assert set(warm[-1].indicators) == {"fast", "slow"}  # warm: the averages exist before the first live bar
    assert all(d.ts < session.clock.now_ns() for d in warm)
    assert [m for _, level, m in engine.events if "warmed up on 6 bars" in m]
    market = asyncio.create_task(tape(fake, 1.0))
    await session.run(duration=1.2)
    await market
    rows = query(db, "SELECT kind, timeframe, end_ts FROM market_data ORDER BY seq")
    warm_rows = [r for r in rows if r[0] == "warmup"]
    assert len(warm_rows) == 6 and rows[:6] == warm_rows and all(r[1] == "1m" for r in warm_rows)
    ends = [r[2] for r in warm_rows]
    assert ends == sorted(ends) and {b - a for a, b in zip(ends, ends[1:], strict=False)} == {MINUTE_MS * 1_000_000}
    stored = query(db, "SELECT reason FROM decisions ORDER BY seq")
    assert sum(reason.startswith(WARMUP_MARK) for (reason,) in stored) == 6

    exported = tmp_path / "market-data.csv"  # warm-up bars among trades and books: their ends stay exact
    code, _, err = await paperdesk("export", "--what", "market_data", "--db", str(db), "--out", str(exported))
    assert code == 0, err
    assert [int(v) for v in pd.read_csv(exported, dtype=str)["end_ts"].dropna()] == ends

    report = validate(db)  # the twin replays the same history and marks the same decisions
    assert report.score.paper_decisions == report.score.twin_decisions and not report.differences
    assert report.holds.compared >= 6 and report.holds.both_held == report.holds.compared

    again = PaperSession(sma_config(fake), db_path=db)
    await again.open()  # a resume replays the history it was saved with; it does not fetch it again as new
    assert sum(d.reason.startswith(WARMUP_MARK) for d in again.engine.decisions) == 6
    await again.close()
    await again.feed.close()


async def test_a_timeframe_the_exchange_has_no_candles_of_warms_up_on_live_data_and_says_so(fake, tmp_path):
    await history(fake, 10)
    db = tmp_path / "desk.sqlite"
    session = PaperSession(sma_config(fake, timeframe="7m"), db_path=db)
    await session.open()  # bars are built from trades whatever the exchange's candles: it only cannot warm up
    said = [m for _, level, m in session.engine.events if level == "WARN" and "binance has no 7m candles" in m]
    assert len(said) == 1 and "it has 1s, 1m, 3m" in said[0] and "warm up on live data" in said[0]
    assert not [d for d in session.engine.decisions if d.reason.startswith(WARMUP_MARK)]
    await session.close()
    await session.feed.close()
