"""Paper mode on a second exchange with another URL layout: the real ccxt.pro okx client against the loopback OKX fake.

OKX differs from Binance where paper mode could break: one REST host templated as https://{hostname}, the websocket
on another host (ws.okx.com) with the channel's access in its path, its own instrument fields (tickSz, lotSz, minSz,
no minimum notional), and book updates chained by seqId/prevSeqId, resynced by unsubscribing and subscribing again."""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import ccxt
import pytest

from engine.clock import LiveClock
from engine.config import parse_config
from engine.model.order import OrderSide
from engine.session import PaperSession
from engine.validation.validate import validate
from engine.venues_ccxt import CcxtFeed, make_exchange
from engine.venues_ccxt.connection import api_urls
from tests.conftest import toml_text
from tests.console.test_cli import REPO
from tests.fakes.okx import FakeOkx
from tests.venues.test_ccxt_feed import books, events_until, trades
from tests.venues.test_ccxt_paper_session import ccxt_config, paperdesk, query

BIDS = [("50000", "1"), ("49999.9", "2"), ("49999.8", "3")]
ASKS = [("50000.1", "0.5"), ("50000.2", "2"), ("50000.3", "4")]
PUBLIC_WS = "/ws/ws/v5/public"  # wss://ws.okx.com:443/ws/v5/public, the host's first label kept


@pytest.fixture
async def okx() -> AsyncIterator[FakeOkx]:
    async with FakeOkx() as running:
        await running.set_book("BTC/USDT", BIDS, ASKS)
        await running.set_book("ETH/USDT", [("3000", "5")], [("3000.01", "5")])
        yield running


async def tape(fake: FakeOkx, seconds: float, swing: bool = False) -> None:
    """The market moves: a print per symbol and a book change every 100 ms. swing: prices are higher in odd
    wall-clock seconds than in even ones, so each 1 s bar closes on the other side of the one before."""
    for i in range(int(seconds * 10)):
        up = swing and int(time.time()) % 2
        await fake.trade("BTC/USDT", "50010.1" if up else "50000.1", "0.01")
        await fake.trade("ETH/USDT", "3001.01" if up else "3000.01", "0.1", side="sell")
        await fake.update_book("BTC/USDT", bids=[("50000", str(1 + i % 3))])
        await asyncio.sleep(0.1)


def okx_config(address: str, **venue: object) -> dict[str, object]:
    return ccxt_config(address, exchange="okx", **venue)


async def test_every_okx_url_is_sent_to_the_fake_and_only_the_spot_list_is_loaded(okx):
    exchange = make_exchange("okx", okx.http_url, {"timeout": 2000})
    try:
        # the REST host is a template (https://{hostname}); the websocket is on another host, its access in the path
        assert all(urlsplit(url).hostname == "127.0.0.1" for url in api_urls(exchange))
        assert exchange.urls["api"]["rest"] == okx.http_url
        assert exchange.get_url("books", "public") == f"ws://127.0.0.1:{urlsplit(okx.http_url).port}{PUBLIC_WS}"
        await exchange.load_markets()
        assert [(c.method, c.path, c.params) for c in okx.calls] == [
            ("GET", "/api/v5/public/instruments", {"instType": "SPOT"})]  # no futures, swaps or options
        with pytest.raises(ccxt.AuthenticationError):
            await exchange.fetch_balance()  # the public client cannot sign, so nothing is sent
        assert len(okx.calls) == 1
    finally:
        await exchange.close()


async def test_a_paper_session_on_okx_lists_records_fills_and_validates(okx, tmp_path):
    db = tmp_path / "desk.sqlite"
    session = PaperSession(parse_config(okx_config(okx.http_url)), db_path=db)
    await session.open()
    market = asyncio.create_task(tape(okx, 1.5))
    snapshot = await session.run(duration=2.0)
    await market

    # OKX's grid: tickSz, lotSz and minSz; it lists no minimum notional, and ccxt's fee table for okx spot applies
    assert query(db, "SELECT symbol, tick_size, lot_size, min_qty, min_notional, maker_fee, taker_fee "
                     "FROM instruments") == [("BTC/USDT", 0.1, 1e-8, 1e-5, 0.0, 0.001, 0.0015)]
    assert json.loads(query(db, "SELECT config_json FROM sessions")[0][0])["venue"]["exchange"] == "okx"
    kinds = dict(query(db, "SELECT kind, COUNT(*) FROM market_data GROUP BY kind"))
    assert kinds.get("book", 0) >= 5 and kinds.get("trade", 0) >= 5, kinds
    first_book = query(db, "SELECT bids, asks FROM market_data WHERE kind = 'book' ORDER BY seq LIMIT 1")[0]
    assert [json.loads(side)[0] for side in first_book] == [[50000.0, 1.0], [50000.1, 0.5]]  # OKX's snapshot
    assert query(db, "SELECT DISTINCT side FROM market_data WHERE kind = 'trade'") == [("BUY",)]  # OKX's taker side

    # the strategy decided on the first print and our simulator filled it on OKX's book: the best ask
    assert query(db, "SELECT side, qty, price FROM fills") == [("BUY", 0.01, 50000.1)] and snapshot.fills == 1
    report = validate(db)  # in process: the command's own process would not know this test's strategy
    assert report.score.paper_decisions == 1 and report.lines()

    assert okx.private_calls() == []
    assert {(c.method, c.path) for c in okx.calls} == {
        ("GET", "/api/v5/public/instruments"), ("WS", PUBLIC_WS), ("subscribe", PUBLIC_WS)}
    assert sorted(okx.subscriptions()) == ["books:BTC-USDT", "trades:BTC-USDT"]


async def test_the_command_runs_the_okx_example_on_the_fake_and_validates_it(okx, tmp_path):
    data = tomllib.loads((REPO / "examples" / "okx-paper.toml").read_text())
    data["venue"] |= {"url": okx.http_url, "timeout_ms": 2000.0}
    data["session"] |= {"equity_mark_seconds": 0.5, "status_seconds": 1.0}
    for strategy in data["strategies"]:  # 1 s bars and the shortest averages: a cross at each bar once warm
        strategy["timeframe"] = "1s"
        strategy["params"] |= {"fast": 1, "slow": 2}
    config, db = tmp_path / "okx.toml", tmp_path / "desk.sqlite"
    config.write_text(toml_text(data))
    market = asyncio.create_task(tape(okx, 8.0, swing=True))
    code, out, err = await paperdesk("run", "--no-ui", "--duration", "5", "--config", str(config), "--db", str(db))
    market.cancel()
    assert code == 0, err
    lines = out.strip().splitlines()
    assert " start venue=okx(paper) speed=1 " in lines[0] and " summary stopped_by=duration " in lines[-1], out
    assert query(db, "SELECT symbol, tick_size, lot_size, min_qty FROM instruments ORDER BY symbol") == [
        ("BTC/USDT", 0.1, 1e-8, 1e-5), ("ETH/USDT", 0.01, 1e-6, 1e-4)]
    counts = dict(query(db, "SELECT symbol, COUNT(*) FROM market_data WHERE kind = 'trade' GROUP BY symbol"))
    assert counts.get("BTC/USDT", 0) > 10 and counts.get("ETH/USDT", 0) > 10, counts
    assert {symbol for (symbol,) in query(db, "SELECT DISTINCT symbol FROM fills")} == {"BTC/USDT", "ETH/USDT"}
    assert okx.private_calls() == []
    code, out, err = await paperdesk("validate", "--db", str(db))
    assert code in (0, 1) and "Traceback" not in err, err
    assert "decisions: paper " in out and "sma_btc: " in out and "sma_eth: " in out, out


async def test_an_okx_sequence_gap_resyncs_from_rest_and_is_recorded_as_a_feed_gap(okx, tmp_path):
    db = tmp_path / "desk.sqlite"
    session = PaperSession(parse_config(okx_config(okx.http_url)), db_path=db)
    await session.open()

    async def skip_updates() -> None:
        await asyncio.sleep(0.8)
        # the update that carries this level says three updates before it were lost: ccxt refuses the book
        await okx.update_book("BTC/USDT", bids=[("49999.5", "7")], gap=3)

    market = asyncio.gather(tape(okx, 2.5), skip_updates())
    await session.run(duration=2.8)
    await market

    (kind, detail), = query(db, "SELECT kind, detail FROM state_events WHERE scope = 'feed'")
    assert kind == "GAP" and detail.startswith("BTC/USDT: "), detail
    assert "book: sequence gap (InvalidNonce: okx watchOrderBook received invalid nonce)" in detail
    assert any("feed gap on BTC/USDT" in line for _, level, line in session.engine.events if level == "WARN")
    # resynced: a REST snapshot at once, then the channel unsubscribed and subscribed again for a fresh snapshot
    after = okx.calls[next(i for i, c in enumerate(okx.calls) if c.path == "/api/v5/market/books"):]
    assert [c.method for c in after if c.method in ("unsubscribe", "subscribe")][:2] == ["unsubscribe", "subscribe"]
    assert okx.subscriptions("unsubscribe") == ["books:BTC-USDT"]
    # the level in the refused update reached the session through the resync, and updates went on after it
    books = [json.loads(bids) for (bids,) in query(db, "SELECT bids FROM market_data WHERE kind = 'book' ORDER BY seq")]
    resynced = next(i for i, bids in enumerate(books) if [49999.5, 7.0] in bids)
    assert len(books) - resynced >= 5, (resynced, len(books))
    assert okx.private_calls() == []


async def test_the_feed_polls_okx_over_rest_when_it_cannot_watch(okx):
    feed = CcxtFeed(make_exchange("okx", okx.http_url, {"timeout_on_exit": 0}), LiveClock(), depth=2,
                    websockets=False, rest_poll_interval_s=0.05)

    async def prints() -> None:  # until one lands after the first poll, which only marks where the tape stands
        while True:
            await okx.trade("BTC/USDT", "49999.9", "0.02", side="sell")
            await asyncio.sleep(0.1)

    market = asyncio.create_task(prints())
    try:
        await feed.subscribe(["BTC/USDT"])
        events = await events_until(feed, lambda got: bool(trades(got)))
    finally:
        market.cancel()
        await feed.close()
    assert books(events)[0].bids == ((50000.0, 1.0), (49999.9, 2.0))
    tick = trades(events)[0]
    assert (tick.price, tick.size, tick.aggressor) == (49999.9, 0.02, OrderSide.SELL)
    assert {(c.method, c.path) for c in okx.calls} == {
        ("GET", "/api/v5/public/instruments"), ("GET", "/api/v5/market/books"), ("GET", "/api/v5/market/trades")}
