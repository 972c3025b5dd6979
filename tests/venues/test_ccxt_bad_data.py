"""What an exchange sends wrong never reaches the engine, never stops the feed, and is never hidden.

Through ccxt, a Binance print priced "-1", "0" or "1e400" arrives as -1.0, 0.0 or inf, an empty price as None, and
"NaN" makes ccxt's own parsing raise inside its websocket reader (which then stops reading that socket for good).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from engine.config import parse_config
from engine.session import PaperSession
from tests.fakes.binance import FakeBinance
from tests.venues.test_ccxt_paper_session import ccxt_config, query

GARBLED = ["-1", "0", "1e400", "", "NaN", "-1", "0", "1e400", "", "NaN"]


async def prints(fake: FakeBinance, n: int, price: str = "50010") -> None:
    for _ in range(n):
        await fake.trade("BTC/USDT", price, "0.01")
        await asyncio.sleep(0.05)


async def session_while(fake: FakeBinance, db: Path, market: Callable[[PaperSession], Awaitable[None]],
                        seconds: float) -> PaperSession:
    """A ccxt paper session on db, run for seconds (or until stopped) while market(session) drives the fake."""
    session = PaperSession(parse_config(ccxt_config(fake.http_url)), db_path=db)
    await session.open()
    running = asyncio.create_task(market(session))
    await session.run(duration=seconds)
    await running
    return session


async def test_garbled_prints_and_book_levels_are_dropped_counted_and_told_and_the_feed_reads_on(fake, tmp_path):
    db = tmp_path / "desk.sqlite"

    async def market(_: PaperSession) -> None:
        await prints(fake, 5)
        for price in GARBLED:
            await fake.garbled_trade("BTC/USDT", price)
            await asyncio.sleep(0.05)
        await fake.update_book("BTC/USDT", bids=[("-1", "2")])  # ccxt keeps the level: each book update has it
        await fake.update_book("BTC/USDT", bids=[("49990", "3")])
        await fake.update_book("BTC/USDT", bids=[("-1", "0")])  # gone again
        await prints(fake, 5, "50020")  # the socket still reads: NaN did not end it

    session = await session_while(fake, db, market, 2.5)
    trades = query(db, "SELECT price, size FROM market_data WHERE kind = 'trade' ORDER BY seq")
    assert trades == [(50010.0, 0.01)] * 5 + [(50020.0, 0.01)] * 5, trades
    books = query(db, "SELECT bids FROM market_data WHERE kind = 'book'")
    assert books and not any("-1" in bids for (bids,) in books)

    health = session.feed.health()
    assert health.detail.startswith("closed")  # the session has ended: nothing left to say
    feed = session.feed
    # ten prints, then one or two book updates with the level (ccxt may hand over both updates as one book)
    assert len(GARBLED) < feed.dropped <= len(GARBLED) + 2, feed.dropped
    assert feed.last_dropped == "BTC/USDT 1 book level(s) like [-1.0, 2.0]"
    lines = [text for _, _, text in session.engine.events if "market data binance: dropped" in text]
    assert len(lines) == 2, lines  # the 1st and the 10th: a venue sending garbage cannot flood the log
    assert lines[0] == "market data binance: dropped BTC/USDT a trade of 0.01 at -1.0 (1 so far)"
    assert lines[1].startswith("market data binance: dropped a message ccxt could not read (ValueError: ")
    assert lines[1].endswith(" (10 so far)")  # the tenth print was "NaN"


async def test_a_message_ccxt_cannot_read_is_one_warn_line_and_the_prints_after_it_still_arrive(fake, tmp_path):
    db = tmp_path / "desk.sqlite"

    async def market(_: PaperSession) -> None:
        await prints(fake, 3)
        await fake.garbled_trade("BTC/USDT", "NaN")
        await asyncio.sleep(0.1)
        await prints(fake, 3, "50020")

    session = await session_while(fake, db, market, 1.5)
    lines = [(level, text) for _, level, text in session.engine.events if "market data binance: dropped" in text]
    assert len(lines) == 1 and lines[0][0] == "WARN", lines
    assert lines[0][1].startswith("market data binance: dropped a message ccxt could not read (ValueError: ")
    assert query(db, "SELECT price FROM market_data WHERE kind = 'trade' ORDER BY seq") == [(50010.0,)] * 3 + [
        (50020.0,)] * 3


async def test_a_running_feed_names_its_drops_in_its_health(fake, tmp_path):
    seen: list[str] = []

    async def market(session: PaperSession) -> None:
        await prints(fake, 2)
        await fake.garbled_trade("BTC/USDT", "0")
        await asyncio.sleep(0.2)
        seen.append(session.feed.health().detail)
        session.stop("the test has seen it")

    await session_while(fake, tmp_path / "desk.sqlite", market, 5.0)
    assert "; dropped 1 unusable update(s), the last: BTC/USDT a trade of 0.01 at 0.0" in seen[0], seen
