"""CcxtFeed on the real ccxt.pro binance client against the loopback Binance fake: books and trades with the venue's
timestamps, sequence gaps, dropped and silent connections, rate limits, REST polling, and no private call at all."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support
import pytest

from engine.clock import LiveClock
from engine.model.market import BookSnapshot, MarketEvent, TradeTick
from engine.model.order import OrderSide
from engine.venues_ccxt import Backoff, CcxtFeed, VenueInputError, make_exchange
from engine.venues_ccxt.connection import PAPER_OPTIONS, api_urls, point_at_loopback
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_matching import SymbolSpec

SYMBOLS = [SymbolSpec("BTC", "USDT"), SymbolSpec("ETH", "USDT", step="0.0001", min_qty="0.0001")]
BIDS = [("49990", "1"), ("49980", "2"), ("49970", "3")]
ASKS = [("50010", "0.5"), ("50020", "2"), ("50030", "4")]
QUICK = {"timeout_on_exit": 0}  # close() otherwise pauses 250 ms for TLS transports, which loopback has none of
FAST = Backoff(initial_s=0.05, max_s=0.5)
MS = 1_000_000
Gap = tuple[str, int, int, str]


class Rig:
    """A fake exchange, the feeds made against it (closed at the end) and the gaps they report."""

    def __init__(self, fake: FakeBinance) -> None:
        self.fake = fake
        self.clock = LiveClock()
        self.gaps: list[Gap] = []
        self.feeds: list[CcxtFeed] = []

    def client(self, **settings: Any) -> Any:
        exchange = make_exchange("binance", self.fake.http_url, QUICK | settings)
        urls = api_urls(exchange)
        assert urls and all(urlsplit(url).hostname == "127.0.0.1" for url in urls), urls
        return exchange

    async def feed(self, symbols: list[str] | None = None, exchange: Any = None, subscribe: bool = True,
                   **kwargs: Any) -> CcxtFeed:
        """A connected feed, subscribed to symbols (BTC/USDT) unless subscribe=False."""
        options = {"depth": 2, "snapshot_limit": 50, "backoff": FAST, "rng": random.Random(7),
                   "on_gap": lambda *gap: self.gaps.append(gap)} | kwargs
        feed = CcxtFeed(exchange or self.client(), self.clock, **options)
        self.feeds.append(feed)
        await feed.connect()
        if subscribe:
            await feed.subscribe(symbols or ["BTC/USDT"])
        return feed


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with FakeBinance(SYMBOLS) as fake:
        await fake.set_book("BTCUSDT", BIDS, ASKS)
        fake.calls.clear()
        made = Rig(fake)
        yield made
        for feed in made.feeds:
            await feed.close()


async def events_until(feed: CcxtFeed, done: Callable[[list[MarketEvent]], bool],
                       seconds: float = 3.0) -> list[MarketEvent]:
    """Receive batches until done(everything so far); bounded, so a stalled feed fails instead of hanging."""
    events: list[MarketEvent] = []

    async def receive() -> None:
        while not done(events):
            events.extend((await feed.receive()).events)

    await asyncio.wait_for(receive(), seconds)
    return events


async def health_until(feed: CcxtFeed, done: Callable[[Any], bool], seconds: float = 3.0) -> Any:
    async def poll() -> Any:
        while not done(health := feed.health()):
            await asyncio.sleep(0.002)
        return health

    return await asyncio.wait_for(poll(), seconds)


async def watching(feed: CcxtFeed, *message_hashes: str) -> None:
    """Wait until the feed's ccxt watches wait for these messages: ccxt.pro resolves only watches already waiting."""
    async def poll() -> None:
        while not all(any(h in client.futures for client in feed.exchange.clients.values()) for h in message_hashes):
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), 3.0)


def books(events: list[MarketEvent]) -> list[BookSnapshot]:
    return [e for e in events if isinstance(e, BookSnapshot)]


def trades(events: list[MarketEvent]) -> list[TradeTick]:
    return [e for e in events if isinstance(e, TradeTick)]


def calls(fake: FakeBinance, method: str, path: str) -> list[int]:
    """The statuses of the fake's calls of one kind, in order."""
    return [c.status for c in fake.calls if (c.method, c.path) == (method, path)]


# ---------------------------------------------------------------- books and trades


async def test_books_and_trades_arrive_with_the_venues_timestamps(rig):
    feed = await rig.feed()
    first = books(await events_until(feed, books))[0]
    # the REST snapshot carries no venue time, so the book is stamped when it arrived
    assert (first.bids, first.asks) == (((49990.0, 1.0), (49980.0, 2.0)), ((50010.0, 0.5), (50020.0, 2.0)))
    assert abs(first.ts - rig.clock.now_ns()) < 1_000 * MS

    await watching(feed, "orderbook::BTC/USDT", "trade::BTC/USDT")
    t0 = rig.fake.now() - 5_000
    await rig.fake.trade("BTCUSDT", "50010", "0.1", ts=t0)
    await rig.fake.trade("BTCUSDT", "49990", "0.2", ts=t0 + 1, buyer_maker=True)
    events = await events_until(feed, lambda got: len(trades(got)) == 2)
    assert [(t.ts, t.price, t.size, t.aggressor) for t in trades(events)] == [
        (t0 * MS, 50010.0, 0.1, OrderSide.BUY), (t0 * MS + MS, 49990.0, 0.2, OrderSide.SELL)]

    await watching(feed, "orderbook::BTC/USDT")
    await rig.fake.update_book("BTCUSDT", bids=[("49995", "3")], asks=[("50010", "0")])
    before = rig.clock.now_ns()
    update = books(await events_until(feed, books))[-1]
    assert (update.bids, update.asks) == (((49995.0, 3.0), (49990.0, 1.0)), ((50020.0, 2.0), (50030.0, 4.0)))
    assert update.ts % MS == 0 and abs(update.ts - before) < 1_000 * MS  # the depthUpdate's event time, in ns
    health = feed.health()
    assert health.connected and health.detail == "websocket from binance, 1 symbols"
    assert health.last_event_ns == update.ts and health.last_received_ns >= before
    assert rig.gaps == []


async def test_receive_returns_an_empty_batch_after_its_poll_interval_and_batches_in_time_order(rig):
    feed = await rig.feed(["BTC/USDT", "ETH/USDT"], poll_interval_s=0.05)
    await events_until(feed, lambda got: {b.symbol for b in books(got)} == {"BTC/USDT", "ETH/USDT"})
    started = rig.clock.now_ns()
    quiet = await asyncio.wait_for(feed.receive(), 1.0)
    assert quiet.events == [] and quiet.received_ns - started >= 50 * MS

    await watching(feed, "trade::BTC/USDT", "trade::ETH/USDT")
    now = rig.fake.now()
    await rig.fake.trade("ETHUSDT", "3000", "1", ts=now - 10)
    await rig.fake.trade("BTCUSDT", "50000", "0.1", ts=now - 20)

    async def both_waiting() -> None:  # both prints in the feed's buffer, so that one batch carries them
        while len(trades(feed._pending)) < 2:
            await asyncio.sleep(0.002)

    await asyncio.wait_for(both_waiting(), 3.0)
    batch = await feed.receive()
    assert [(e.symbol, e.ts) for e in batch.events] == [("BTC/USDT", (now - 20) * MS), ("ETH/USDT", (now - 10) * MS)]
    assert batch.received_ns >= max(e.ts for e in batch.events)


async def test_subscribing_an_unlisted_symbol_names_the_listed_one(rig):
    with pytest.raises(VenueInputError, match="binance does not list 'BTC-USDT' .*BTC/USDT"):
        await rig.feed(["BTC-USDT"])
    assert [c for c in rig.fake.calls if c.method == "WS"] == []


# ---------------------------------------------------------------- gaps, drops and limits


async def test_a_sequence_gap_resyncs_the_book_from_rest_and_reports_the_gap(rig):
    feed = await rig.feed()
    await events_until(feed, books)
    await watching(feed, "orderbook::BTC/USDT")
    await rig.fake.update_book("BTCUSDT", bids=[("49995", "3")], gap=1)  # an update id skipped on the stream
    resynced = books(await events_until(feed, lambda got: bool(books(got))))
    assert resynced[0].bids[0] == (49995.0, 3.0)  # the REST snapshot holds the change the stream lost
    [(symbol, start, end, reason)] = rig.gaps
    assert symbol == "BTC/USDT" and start < end <= rig.clock.now_ns()
    assert reason.startswith("book: sequence gap (ChecksumError: binance BTC/USDT : orderbook data checksum")
    assert "last gap BTC/USDT" in feed.health().detail and feed.health().connected
    # one snapshot when the watch began, ours after the gap, and ccxt's own when the next watch resubscribed
    await events_until(feed, lambda got: len(calls(rig.fake, "GET", "/api/v3/depth")) == 3)

    await watching(feed, "orderbook::BTC/USDT")
    await rig.fake.update_book("BTCUSDT", bids=[("49996", "1")])  # and the stream is whole again
    assert books(await events_until(feed, books))[-1].bids[0] == (49996.0, 1.0)
    assert len(rig.gaps) == 1


async def test_a_dropped_connection_reconnects_after_backoff_and_reports_the_downtime(rig):
    backoff = Backoff(initial_s=0.2, max_s=1.0)
    feed = await rig.feed(backoff=backoff, rng=random.Random(11))
    await events_until(feed, books)
    await watching(feed, "orderbook::BTC/USDT", "trade::BTC/USDT")
    await rig.fake.disconnect()  # a TCP reset, no close frame
    down = await health_until(feed, lambda h: h.detail.count("reconnecting in") == 2)
    assert not down.connected and down.detail.startswith("BTC/USDT ") and "NetworkError" in down.detail
    # both streams wait a jittered delay drawn from the seeded rng, whichever of them failed first
    rng = random.Random(11)
    drawn = sorted(f"reconnecting in {backoff.delay(0, rng):.3g} s" for _ in range(2))
    assert sorted(re.findall(r"reconnecting in [0-9.]+ s", down.detail)) == drawn

    back = books(await events_until(feed, lambda got: bool(books(got)) and bool(rig.gaps)))
    assert back[-1].bids[0] == (49990.0, 1.0)
    [(symbol, start, end, reason)] = rig.gaps
    assert symbol == "BTC/USDT" and "NetworkError" in reason
    assert end - start >= 200 * MS  # at least the first backoff delay
    assert feed.health().connected
    assert calls(rig.fake, "WS", "/stream/ws/0") == [200, 200] and calls(rig.fake, "WS", "/stream/ws/1") == [200, 200]

    await watching(feed, "trade::BTC/USDT")
    await rig.fake.trade("BTCUSDT", "50000", "0.3")  # the trade stream resubscribed too
    assert [t.size for t in trades(await events_until(feed, trades))] == [0.3]


async def test_a_silent_connection_is_noticed_through_keepalive_and_reconnected(rig):
    feed = await rig.feed(exchange=rig.client(streaming={"keepAlive": 150}))
    await events_until(feed, books)
    rig.fake.silence()  # no events, no pongs: only ccxt's keepalive can tell
    down = await health_until(feed, lambda h: not h.connected)
    assert "RequestTimeout" in down.detail
    rig.fake.resume()
    await events_until(feed, lambda got: bool(books(got)) and bool(rig.gaps))
    assert "RequestTimeout" in rig.gaps[0][3]


async def test_a_429_backs_off_for_as_long_as_retry_after_asks_and_says_so(rig):
    feed = await rig.feed(subscribe=False)
    rig.fake.fail_next(1, 429, retry_after=1)
    await feed.subscribe(["BTC/USDT"])  # the book snapshot is the next request
    limited = await health_until(feed, lambda h: not h.connected)
    assert limited.detail.startswith("BTC/USDT book: rate limited (DDoSProtection: binance")
    assert "retrying in 1 s (Retry-After: 1 s)" in limited.detail
    asked_at = rig.clock.now_ns()

    first = books(await events_until(feed, books, seconds=4.0))[0]
    assert first.ts - asked_at >= 900 * MS  # waited the second the venue asked for
    [(_, _, _, reason)] = rig.gaps
    assert reason.startswith("book: rate limited (DDoSProtection")
    # ccxt's own retry is off: one refused snapshot request, then one after the pause
    assert calls(rig.fake, "GET", "/api/v3/depth") == [429, 200]
    assert feed.health().connected


# ---------------------------------------------------------------- REST polling


async def test_polling_delivers_books_and_only_new_trades(rig):
    await rig.fake.trade("BTCUSDT", "50000", "0.7")  # printed before the feed started: not delivered
    feed = await rig.feed(exchange=rig.client(enableRateLimit=False), websockets=False, rest_poll_interval_s=0.02)
    first = books(await events_until(feed, books))[0]
    assert first.bids == ((49990.0, 1.0), (49980.0, 2.0))
    t0 = rig.fake.now()
    await rig.fake.trade("BTCUSDT", "50010", "0.1", ts=t0)
    await rig.fake.trade("BTCUSDT", "49990", "0.2", ts=t0, buyer_maker=True)
    await rig.fake.update_book("BTCUSDT", bids=[("49995", "1")])
    events = await events_until(feed, lambda got: len(trades(got)) == 2 and books(got)[-1].bids[0][0] == 49995.0)
    assert [(t.ts, t.size, t.aggressor) for t in trades(events)] == [
        (t0 * MS, 0.1, OrderSide.BUY), (t0 * MS, 0.2, OrderSide.SELL)]
    later = await events_until(feed, lambda got: len(books(got)) >= 3)  # more polls, and no print twice
    assert trades(later) == []
    assert feed.health().detail == "REST polling from binance, 1 symbols"
    assert [c for c in rig.fake.calls if c.method in ("WS", "SUBSCRIBE")] == []


async def test_a_polled_rate_limit_backs_off_and_reports_a_gap(rig):
    feed = await rig.feed(exchange=rig.client(enableRateLimit=False), websockets=False, rest_poll_interval_s=0.02)
    await events_until(feed, books)
    rig.fake.fail_next(1, 418, retry_after=0)
    limited = await health_until(feed, lambda h: not h.connected)
    assert limited.detail.startswith("BTC/USDT poll: rate limited (DDoSProtection")
    await events_until(feed, lambda got: bool(books(got)) and bool(rig.gaps))
    assert rig.gaps[0][3].startswith("poll: rate limited")


async def test_a_client_that_cannot_watch_falls_back_to_polling(rig):
    rest_only = ccxt.async_support.binance(QUICK | {"enableRateLimit": False, "options": PAPER_OPTIONS["binance"]})
    point_at_loopback(rest_only, rig.fake.http_url)
    feed = await rig.feed(exchange=rest_only, rest_poll_interval_s=0.02)
    assert books(await events_until(feed, books))[0].bids[0] == (49990.0, 1.0)
    assert feed.health().detail.startswith("REST polling (cannot watch: NotSupported: binance watch")
    assert not feed.websockets


# ---------------------------------------------------------------- paper mode


async def test_paper_mode_makes_no_private_call_and_close_stops_everything(rig):
    feed = await rig.feed(["BTC/USDT", "ETH/USDT"])
    await events_until(feed, lambda got: len(books(got)) >= 2)
    await watching(feed, "trade::BTC/USDT")
    await rig.fake.trade("BTCUSDT", "50000", "0.1")
    await events_until(feed, trades)
    exchange = feed.exchange
    assert not exchange.apiKey and not exchange.secret
    await feed.close()
    assert (feed.health().connected, feed.health().detail) == (False, "closed")
    assert exchange.clients == {}
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("ccxt-feed-")] == []
    assert feed.state() is None
    assert rig.fake.private_calls() == []
    assert {(c.method, c.path) for c in rig.fake.calls} == {
        ("GET", "/api/v3/exchangeInfo"), ("GET", "/api/v3/depth"),
        ("WS", "/stream/ws/0"), ("SUBSCRIBE", "/stream/ws/0"), ("WS", "/stream/ws/1"), ("SUBSCRIBE", "/stream/ws/1"),
        ("WS", "/stream/ws/2"), ("SUBSCRIBE", "/stream/ws/2"), ("WS", "/stream/ws/3"), ("SUBSCRIBE", "/stream/ws/3")}


async def test_a_trade_stream_that_keeps_failing_is_never_reported_as_recovered(rig):
    backoff = Backoff(initial_s=0.05, max_s=0.1)
    feed = await rig.feed(backoff=backoff, rng=random.Random(3), subscribe=False)

    async def refused(symbol: str, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.01)
        raise ccxt.NetworkError("binance trades subscription refused")

    feed.exchange.watch_trades = refused
    await feed.subscribe(["BTC/USDT"])
    connected = []
    for _ in range(15):  # about 1.5 s: a dozen failed rounds, each of them once called a recovery
        await rig.fake.update_book("BTCUSDT", bids=[("49990", "1")])
        await feed.receive()
        connected.append(feed.health().connected)
        await asyncio.sleep(0.1)
    assert rig.gaps == [] and not any(connected[3:]), (rig.gaps, connected)
    assert "trades" in feed.health().detail and "NetworkError" in feed.health().detail
