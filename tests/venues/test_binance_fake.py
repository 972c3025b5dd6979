"""The real ccxt clients (async REST and pro websockets) against the loopback Binance fake in tests/fakes.

These pin down both the fake and what ccxt 4.5.90 does against Binance spot: which endpoints each call hits,
how errors map to ccxt exceptions, and how the order-book sequence check behaves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support
import ccxt.pro
import pytest

from tests.fakes.binance import FakeBinance, api_urls, point_at, spot_options
from tests.fakes.binance_matching import SymbolSpec

T = TypeVar("T")
# no client-side throttling, and no 250 ms pause in close() (it lets TLS transports finish; loopback has none)
QUICK = {"enableRateLimit": False, "timeout_on_exit": 0}
SYMBOLS = [
    SymbolSpec("BTC", "USDT", tick="0.01", step="0.00001", min_qty="0.00001", max_qty="9000", min_notional="5"),
    SymbolSpec("ETH", "USDT", tick="0.01", step="0.0001", min_qty="0.001", max_qty="5000", min_notional="10",
               notional_filter="MIN_NOTIONAL"),
]
BIDS = [("49990", "1"), ("49980", "2")]
ASKS = [("50010", "0.5"), ("50020", "2")]
# a minute boundary ten minutes back: trade times set from it make the candles exact and stay in the 24h ticker
T0 = (int(time.time() * 1000) // 60_000 - 10) * 60_000


async def within(awaitable: Awaitable[T], seconds: float = 3.0) -> T:
    """Every wait is bounded, so a fake or client that stalls fails the test instead of hanging it."""
    return await asyncio.wait_for(awaitable, seconds)


async def watching(exchange: Any, message_hash: str, awaitable: Awaitable[T]) -> asyncio.Task[T]:
    """Start a ccxt.pro watch and return once it waits for message_hash.

    ccxt.pro resolves only the watches already waiting when a message lands (a later watch waits for the next
    one), so a test pushes an event only after this; it reads the pending futures off ccxt's ws clients.
    """
    task = asyncio.ensure_future(awaitable)
    for _ in range(300):
        if task.done() or any(message_hash in client.futures for client in exchange.clients.values()):
            return task
        await asyncio.sleep(0.01)
    task.cancel()
    raise AssertionError(f"the watch never waited for {message_hash}")


def client_config(fake: FakeBinance, keys: bool = True, secret: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"options": spot_options(), **QUICK}
    if keys:
        config |= {"apiKey": fake.api_key, "secret": fake.secret if secret is None else secret}
    return config


def local(exchange: Any, fake: FakeBinance) -> Any:
    point_at(exchange, fake)
    urls = api_urls(exchange)
    assert urls and all(urlsplit(url).hostname == "127.0.0.1" for url in urls), urls
    return exchange


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(SYMBOLS, {"USDT": "1000000", "BTC": "1"}) as running:
        await running.set_book("BTCUSDT", BIDS, ASKS)
        running.calls.clear()
        yield running


@pytest.fixture
async def rest(fake: FakeBinance) -> AsyncIterator[Any]:
    exchange = local(ccxt.async_support.binance(client_config(fake)), fake)
    yield exchange
    await exchange.close()


@pytest.fixture
async def pro(fake: FakeBinance) -> AsyncIterator[Any]:
    exchange = local(ccxt.pro.binance(client_config(fake)), fake)
    yield exchange
    await exchange.close()


def paths(fake: FakeBinance) -> list[str]:
    return [f"{call.method} {call.path}" for call in fake.calls]


# ---------------------------------------------------------------- markets and public data


async def test_load_markets_parses_filters_with_one_request(fake, rest):
    markets = await within(rest.load_markets())
    btc, eth = markets["BTC/USDT"], markets["ETH/USDT"]
    assert (btc["precision"]["price"], btc["precision"]["amount"]) == (0.01, 0.00001)
    assert (btc["limits"]["amount"]["min"], btc["limits"]["amount"]["max"]) == (0.00001, 9000)
    assert btc["limits"]["cost"]["min"] == 5  # the NOTIONAL filter
    assert eth["limits"]["cost"]["min"] == 10  # the older MIN_NOTIONAL filter
    assert (eth["precision"]["amount"], eth["limits"]["amount"]["min"]) == (0.0001, 0.001)
    # with keys set, spot_options() is what keeps this to one call: no sapi, margin or futures requests
    assert paths(fake) == ["GET /api/v3/exchangeInfo"]


async def test_default_options_reach_futures_and_with_keys_a_signed_sapi_call(fake):
    keyless = local(ccxt.async_support.binance(dict(QUICK)), fake)
    keyed = local(ccxt.async_support.binance({"apiKey": fake.api_key, "secret": fake.secret, **QUICK}), fake)
    try:
        # the fake answers 404 to what it does not serve, so either load fails, but only after the call is logged
        with pytest.raises(ccxt.BaseError):
            await within(keyless.load_markets())
        assert set(paths(fake)) == {"GET /api/v3/exchangeInfo", "GET /fapi/v1/exchangeInfo",
                                    "GET /dapi/v1/exchangeInfo"}
        fake.calls.clear()
        with pytest.raises(ccxt.BaseError):
            await within(keyed.load_markets())
    finally:
        await keyless.close()
        await keyed.close()
    # fetch_currencies (the sapi currency list and margin pairs, all signed) runs first and fails before exchangeInfo
    assert "/sapi/v1/capital/config/getall" in {call.path for call in fake.calls}
    assert all(call.signed and call.path.startswith("/sapi/") for call in fake.calls)


async def test_public_rest_data(fake, rest):
    await fake.trade("BTCUSDT", "50000", "0.1", ts=T0 + 1_000)
    await fake.trade("BTCUSDT", "50100", "0.2", ts=T0 + 30_000, buyer_maker=True)
    await fake.trade("BTCUSDT", "49900", "0.3", ts=T0 + 61_000)

    book = await within(rest.fetch_order_book("BTC/USDT"))
    assert book["bids"] == [[49990.0, 1.0], [49980.0, 2.0]]
    assert book["asks"] == [[50010.0, 0.5], [50020.0, 2.0]]
    assert book["nonce"] == fake.exchange.books["BTCUSDT"].update_id

    trades = await within(rest.fetch_trades("BTC/USDT"))
    assert [(t["price"], t["amount"], t["side"]) for t in trades] == [
        (50000.0, 0.1, "buy"), (50100.0, 0.2, "sell"), (49900.0, 0.3, "buy")]
    assert [t["price"] for t in await within(rest.fetch_trades("BTC/USDT", since=T0 + 60_000))] == [49900.0]

    candles = await within(rest.fetch_ohlcv("BTC/USDT", "1m"))
    assert candles == [[T0, 50000.0, 50100.0, 50000.0, 50100.0, 0.3], [T0 + 60_000, 49900.0, 49900.0, 49900.0,
                                                                         49900.0, 0.3]]
    ticker = await within(rest.fetch_ticker("BTC/USDT"))
    assert (ticker["last"], ticker["bid"], ticker["ask"]) == (49900.0, 49990.0, 50010.0)
    assert set(await within(rest.fetch_tickers())) == {"BTC/USDT", "ETH/USDT"}
    assert await within(rest.public_get_ping()) == {}
    assert abs(await within(rest.fetch_time()) - fake.now()) < 1_000
    assert fake.private_calls() == []


async def test_a_public_only_session_makes_no_private_call(fake):
    exchange = local(ccxt.pro.binance(client_config(fake, keys=False)), fake)
    try:
        await within(exchange.load_markets())
        await within(exchange.watch_order_book("BTC/USDT"))
        trades = await watching(exchange, "trade::BTC/USDT", exchange.watch_trades("BTC/USDT"))
        await fake.trade("BTCUSDT", "50000", "0.01")
        assert [t["price"] for t in await within(trades)] == [50000.0]
        await within(exchange.un_watch_trades("BTC/USDT"))
        await within(exchange.fetch_ohlcv("BTC/USDT", "1m"))
    finally:
        await exchange.close()
    assert fake.private_calls() == []
    assert {(call.method, call.path) for call in fake.calls} == {
        ("GET", "/api/v3/exchangeInfo"), ("GET", "/api/v3/depth"), ("GET", "/api/v3/klines"),
        ("WS", "/stream/ws/0"), ("SUBSCRIBE", "/stream/ws/0"), ("WS", "/stream/ws/1"), ("SUBSCRIBE", "/stream/ws/1"),
        ("UNSUBSCRIBE", "/stream/ws/1")}


async def test_sandbox_mode_then_point_at_stays_on_spot_and_refuses_sapi_locally(fake):
    exchange = ccxt.async_support.binance(client_config(fake))
    exchange.set_sandbox_mode(True)
    local(exchange, fake)
    try:
        await within(exchange.load_markets())
        with pytest.raises(ccxt.NotSupported):
            await within(exchange.sapi_get_capital_config_getall())
    finally:
        await exchange.close()
    assert paths(fake) == ["GET /api/v3/exchangeInfo"]


# ---------------------------------------------------------------- order book stream


async def test_watch_order_book_gets_the_snapshot_then_deltas(fake, pro):
    book = await within(pro.watch_order_book("BTC/USDT"))
    assert (book["bids"][0], book["asks"][0]) == ([49990.0, 1.0], [50010.0, 0.5])
    snapshot_id = book["nonce"]

    update = await watching(pro, "orderbook::BTC/USDT", pro.watch_order_book("BTC/USDT"))
    await fake.update_book("BTCUSDT", bids=[("49995", "3")], asks=[("50010", "0")])
    book = await within(update)
    assert (book["bids"][0], book["asks"][0]) == ([49995.0, 3.0], [50020.0, 2.0])
    assert book["nonce"] == snapshot_id + 2  # two level changes, one update id each
    subscribe = next(call for call in fake.calls if call.method == "SUBSCRIBE")
    assert subscribe.params == {"params": "btcusdt@depth@100ms"}


async def test_a_skipped_sequence_number_is_detected_and_a_new_watch_resyncs(fake, pro):
    await within(pro.watch_order_book("BTC/USDT"))
    broken = await watching(pro, "orderbook::BTC/USDT", pro.watch_order_book("BTC/USDT"))
    await fake.update_book("BTCUSDT", bids=[("49995", "3")], gap=1)
    with pytest.raises(ccxt.ChecksumError):
        await within(broken)

    book = await within(pro.watch_order_book("BTC/USDT"))
    assert book["bids"][0] == [49995.0, 3.0]
    assert book["nonce"] == fake.exchange.books["BTCUSDT"].update_id
    assert paths(fake).count("GET /api/v3/depth") == 2  # ccxt re-fetched the snapshot


async def test_a_silenced_depth_stream_comes_back_with_a_gap(fake, pro):
    await within(pro.watch_order_book("BTC/USDT"))
    fake.silence("btcusdt@depth")
    await fake.update_book("BTCUSDT", bids=[("49995", "3")])
    fake.resume("btcusdt@depth")
    broken = await watching(pro, "orderbook::BTC/USDT", pro.watch_order_book("BTC/USDT"))
    await fake.update_book("BTCUSDT", bids=[("49996", "1")])
    with pytest.raises(ccxt.ChecksumError):
        await within(broken)


async def test_a_silent_connection_trips_ccxt_keepalive(fake):
    exchange = local(ccxt.pro.binance(client_config(fake) | {"streaming": {"keepAlive": 100}}), fake)
    try:
        await within(exchange.watch_order_book("BTC/USDT"))
        fake.silence()
        stalled = await watching(exchange, "orderbook::BTC/USDT", exchange.watch_order_book("BTC/USDT"))
        with pytest.raises(ccxt.RequestTimeout):
            await within(stalled, 2)
    finally:
        await exchange.close()


async def test_watch_trades_and_ohlcv(fake, pro):
    trades = await watching(pro, "trade::BTC/USDT", pro.watch_trades("BTC/USDT"))
    await fake.trade("BTCUSDT", "50000", "0.1", ts=T0 + 1_000)
    assert [(t["price"], t["amount"]) for t in await within(trades)] == [(50000.0, 0.1)]

    candles = await watching(pro, "ohlcv::BTC/USDT::1m", pro.watch_ohlcv("BTC/USDT", "1m"))
    await fake.trade("BTCUSDT", "50100", "0.2", ts=T0 + 2_000)
    assert (await within(candles))[-1] == [T0, 50000.0, 50100.0, 50000.0, 50100.0, 0.3]


# ---------------------------------------------------------------- orders over REST


async def test_market_and_limit_orders_with_client_ids(fake, rest):
    market = await within(rest.create_order("BTC/USDT", "market", "buy", 0.6, params={"clientOrderId": "paper-1"}))
    assert (market["status"], market["filled"], market["clientOrderId"]) == ("closed", 0.6, "paper-1")
    assert market["average"] == pytest.approx((0.5 * 50010 + 0.1 * 50020) / 0.6)  # walked two levels
    assert market["fee"] == {"currency": "BTC", "cost": 0.0006}
    assert fake.exchange.books["BTCUSDT"].asks == {Decimal("50020"): Decimal("1.9")}

    limit = await within(rest.create_order("BTC/USDT", "limit", "buy", 0.1, 49000, {"clientOrderId": "paper-2"}))
    assert (limit["status"], limit["filled"], limit["price"]) == ("open", 0.0, 49000.0)
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await within(rest.create_order("BTC/USDT", "limit", "buy", 0.1, 49000, {"clientOrderId": "paper-2"}))
    assert [o["id"] for o in await within(rest.fetch_open_orders("BTC/USDT"))] == [limit["id"]]
    by_client_id = await within(rest.fetch_order(None, "BTC/USDT", {"clientOrderId": "paper-2"}))
    assert by_client_id["id"] == limit["id"]
    balance = await within(rest.fetch_balance())
    assert balance["USDT"]["used"] == 4900.0

    canceled = await within(rest.cancel_order(limit["id"], "BTC/USDT"))
    assert canceled["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        await within(rest.cancel_order(limit["id"], "BTC/USDT"))
    assert (await within(rest.fetch_balance()))["USDT"]["used"] == 0.0

    trades = await within(rest.fetch_my_trades("BTC/USDT"))
    assert [(t["price"], t["amount"], t["order"]) for t in trades] == [
        (50010.0, 0.5, market["id"]), (50020.0, 0.1, market["id"])]
    assert [o["id"] for o in await within(rest.fetch_closed_orders("BTC/USDT"))] == [market["id"]]
    # Binance keeps a client order id unique among *open* orders only: once filled, the same id is accepted again
    again = await within(rest.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "paper-1"}))
    assert again["id"] != market["id"]


async def test_ack_and_result_replies(fake, rest):
    ack = await within(rest.create_order("BTC/USDT", "limit", "buy", 0.1, 49000, {"newOrderRespType": "ACK"}))
    assert (ack["status"], ack["clientOrderId"]) == (None, fake.exchange.resolve(int(ack["id"])).client_id)
    result = await within(rest.create_order("BTC/USDT", "market", "buy", 0.1, params={"newOrderRespType": "RESULT"}))
    assert (result["status"], result["filled"], result["trades"]) == ("closed", 0.1, [])


async def test_resting_limit_orders_fill_as_the_market_moves(fake, rest):
    order = await within(rest.create_order("BTC/USDT", "limit", "buy", 0.3, 49900, {"clientOrderId": "rest-1"}))
    await fake.trade("BTCUSDT", "49950", "1")  # above the limit: no fill
    await fake.trade("BTCUSDT", "49900", "0.1")
    partial = await within(rest.fetch_order(order["id"], "BTC/USDT"))
    assert (partial["status"], partial["filled"], partial["remaining"]) == ("open", 0.1, 0.2)

    await fake.set_book("BTCUSDT", bids=[("49800", "1")], asks=[("49850", "1")])  # the ask crosses the order
    done = await within(rest.fetch_order(order["id"], "BTC/USDT"))
    assert (done["status"], done["filled"], done["average"]) == ("closed", 0.3, 49900.0)
    assert fake.exchange.books["BTCUSDT"].asks == {Decimal("49850"): Decimal("0.8")}
    balance = await within(rest.fetch_balance())
    assert balance["USDT"]["total"] == pytest.approx(1_000_000 - 0.3 * 49900)
    assert balance["BTC"]["total"] == pytest.approx(1 + 0.3 * 0.999)

    sell = await within(rest.create_order("BTC/USDT", "limit", "sell", 0.5, 50500))
    assert (await within(rest.fetch_balance()))["BTC"]["used"] == 0.5
    await fake.trade("BTCUSDT", "50600", "2")  # a print through the ask fills it at its own price
    sold = await within(rest.fetch_order(sell["id"], "BTC/USDT"))
    assert (sold["status"], sold["average"]) == ("closed", 50500.0)
    fee = (await within(rest.fetch_my_trades("BTC/USDT", params={"orderId": sell["id"]})))[0]["fee"]
    assert fee == {"cost": pytest.approx(0.5 * 50500 * 0.001), "currency": "USDT"}


async def test_time_in_force_and_thin_books(fake, rest):
    ioc = await within(rest.create_order("BTC/USDT", "limit", "buy", 1, 50010, {"timeInForce": "IOC"}))
    assert (ioc["status"], ioc["filled"]) == ("expired", 0.5)
    fok = await within(rest.create_order("BTC/USDT", "limit", "buy", 5, 50020, {"timeInForce": "FOK"}))
    assert (fok["status"], fok["filled"]) == ("expired", 0.0)
    thin = await within(rest.create_order("BTC/USDT", "market", "buy", 3))
    assert (thin["status"], thin["filled"]) == ("expired", 2.0)  # the market order ate the book and expired
    await fake.set_book("BTCUSDT", BIDS, ASKS)
    with pytest.raises(ccxt.InvalidOrder, match="immediately match"):
        await within(rest.create_order("BTC/USDT", "limit", "buy", 0.1, 50010, {"postOnly": True}))


async def test_order_refusals_map_to_ccxt_errors(fake, rest):
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        await within(rest.create_order("BTC/USDT", "limit", "buy", 0.00001, 40000))
    with pytest.raises(ccxt.InsufficientFunds):
        await within(rest.create_order("BTC/USDT", "limit", "buy", 30, 40000))
    with pytest.raises(ccxt.OrderNotFound):
        await within(rest.fetch_order("999", "BTC/USDT"))
    await within(rest.create_order("BTC/USDT", "limit", "buy", 0.1, 40000, {"test": True}))  # validated only
    assert paths(fake)[-1] == "POST /api/v3/order/test"
    assert fake.exchange.orders == {}


async def test_a_cancel_that_loses_the_race_to_a_fill(fake, rest):
    full = await within(rest.create_order("BTC/USDT", "limit", "buy", 0.2, 49000))
    fake.race_cancel(int(full["id"]))
    with pytest.raises(ccxt.OrderNotFound):
        await within(rest.cancel_order(full["id"], "BTC/USDT"))
    assert fake.exchange.outbox == []  # the fill's events went out although the cancel was refused
    assert (await within(rest.fetch_order(full["id"], "BTC/USDT")))["status"] == "closed"

    part = await within(rest.create_order("BTC/USDT", "limit", "buy", 0.2, 49000))
    fake.race_cancel(int(part["id"]), "0.05")
    canceled = await within(rest.cancel_order(part["id"], "BTC/USDT"))
    assert (canceled["status"], canceled["filled"]) == ("canceled", 0.05)


# ---------------------------------------------------------------- the user-data stream


async def test_watch_orders_and_my_trades_see_accept_partial_fill_and_cancel(fake, pro):
    orders = await watching(pro, "orders:BTC/USDT", pro.watch_orders("BTC/USDT"))
    placed = await within(pro.create_order("BTC/USDT", "limit", "buy", 0.2, 49000, {"clientOrderId": "ws-1"}))
    [accepted] = await within(orders)
    assert (accepted["id"], accepted["status"], accepted["clientOrderId"]) == (placed["id"], "open", "ws-1")

    orders = await watching(pro, "orders:BTC/USDT", pro.watch_orders("BTC/USDT"))
    my_trades = await watching(pro, "myTrades:BTC/USDT", pro.watch_my_trades("BTC/USDT"))
    await fake.trade("BTCUSDT", "49000", "0.05")
    assert [(o["status"], o["filled"]) for o in await within(orders)][-1] == ("open", 0.05)
    assert [(t["price"], t["amount"]) for t in await within(my_trades)] == [(49000.0, 0.05)]

    orders = await watching(pro, "orders:BTC/USDT", pro.watch_orders("BTC/USDT"))
    await within(pro.cancel_order(placed["id"], "BTC/USDT"))
    assert [(o["status"], o["filled"]) for o in await within(orders)][-1] == ("canceled", 0.05)

    orders = await watching(pro, "orders:BTC/USDT", pro.watch_orders("BTC/USDT"))
    await within(pro.create_order("BTC/USDT", "limit", "sell", 0.1, 51000, {"clientOrderId": "ws-2"}))
    await within(orders)
    orders = await watching(pro, "orders:BTC/USDT", pro.watch_orders("BTC/USDT"))
    await fake.fill("ws-2")
    filled = (await within(orders))[-1]
    assert (filled["clientOrderId"], filled["status"], filled["filled"]) == ("ws-2", "closed", 0.1)
    subscribes = [call for call in fake.calls if call.method == "userDataStream.subscribe.signature"]
    assert len(subscribes) == 1 and subscribes[0].signed


async def test_a_fill_while_disconnected_is_found_over_rest(fake, pro):
    placed = await within(pro.create_order("BTC/USDT", "limit", "buy", 0.2, 49000, {"clientOrderId": "dc-1"}))
    orders = await watching(pro, "orders:BTC/USDT", pro.watch_orders("BTC/USDT"))
    await fake.disconnect()
    with pytest.raises(ccxt.NetworkError):
        await within(orders)
    await fake.fill("dc-1")
    assert (await within(pro.fetch_order(placed["id"], "BTC/USDT")))["status"] == "closed"

    # a new watch subscribes again on a new connection; Binance does not replay what it missed
    again = await watching(pro, "orders:BTC/USDT", pro.watch_orders("BTC/USDT"))
    later = await within(pro.create_order("BTC/USDT", "limit", "buy", 0.1, 48000))
    assert [(o["id"], o["status"]) for o in await within(again)] == [(later["id"], "open")]
    subscribes = [call for call in fake.calls if call.method == "userDataStream.subscribe.signature"]
    assert len(subscribes) == 2


# ---------------------------------------------------------------- authentication, limits, clock


async def test_wrong_credentials_raise_authentication_error(fake):
    wrong_secret = local(ccxt.pro.binance(client_config(fake, secret="not-the-secret")), fake)
    wrong_key = local(ccxt.async_support.binance(client_config(fake) | {"apiKey": "someone-else"}), fake)
    try:
        with pytest.raises(ccxt.AuthenticationError, match="-1022"):
            await within(wrong_secret.fetch_balance())
        # ccxt 4.5.90 turns a refused user-stream subscription into KeyError('spot'): after rejecting the watch
        # with the AuthenticationError it deletes its subscription flag twice (pro/binance.py, handle_ws_error and
        # ensure_user_data_stream_ws_subscribe_signature); the AuthenticationError survives as the context
        with pytest.raises(KeyError) as refused:
            await within(wrong_secret.watch_orders("BTC/USDT"))
        assert isinstance(refused.value.__context__, ccxt.AuthenticationError)
        assert "-1022" in str(refused.value.__context__)
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await within(wrong_key.fetch_balance())
    finally:
        await wrong_secret.close()
        await wrong_key.close()
    assert [call.status for call in fake.calls if call.path.startswith("/api/")] == [200, 400, 200, 401]


@pytest.mark.parametrize("status", [429, 418])
async def test_rate_limit_replies_raise_ddos_protection(fake, rest, status):
    fake.fail_next(1, status, retry_after=7)
    with pytest.raises(ccxt.DDoSProtection) as raised:
        await within(rest.fetch_ticker("BTC/USDT"))
    # ccxt.RateLimitExceeded is not a DDoSProtection, so catching only it misses these
    assert not isinstance(raised.value, ccxt.RateLimitExceeded)
    assert rest.last_response_headers["Retry-After"] == "7"
    assert (await within(rest.fetch_ticker("BTC/USDT")))["bid"] == 49990.0


async def test_a_clock_outside_the_recv_window_raises_invalid_nonce(fake, rest):
    fake.time_offset_ms = -20_000
    with pytest.raises(ccxt.InvalidNonce):
        await within(rest.fetch_balance())
