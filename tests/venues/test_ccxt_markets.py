"""Instruments from a ccxt market list, and the paper-mode ccxt client: public only, redirected only to loopback."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support
import ccxt.pro
import pytest

from engine.venues_ccxt.connection import Backoff, api_urls, make_exchange, retry_after_s
from engine.venues_ccxt.markets import (
    DECIMAL_PLACES,
    TICK_SIZE,
    VenueInputError,
    closest_symbols,
    instrument_from_market,
    load_instruments,
)
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_matching import SymbolSpec

SYMBOLS = [
    SymbolSpec("BTC", "USDT", tick="0.01", step="0.00001", min_qty="0.0001", min_notional="5"),
    SymbolSpec("ETH", "USDT", tick="0.05", step="0.001", min_qty="0.001", min_notional="10",
               notional_filter="MIN_NOTIONAL"),
    SymbolSpec("BTC", "USDC", tick="0.1", step="0.0001", min_qty="0.0001", min_notional="1"),
]
QUICK = {"timeout_on_exit": 0}  # close() otherwise pauses 250 ms for TLS transports, which loopback has none of


def assert_loopback(exchange: Any) -> None:
    urls = api_urls(exchange)
    assert urls and all(urlsplit(url).hostname == "127.0.0.1" for url in urls), urls


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance(SYMBOLS) as running:
        yield running


@pytest.fixture
async def exchange(fake: FakeBinance) -> AsyncIterator[Any]:
    client = make_exchange("binance", fake.http_url, QUICK)
    assert_loopback(client)
    yield client
    await client.close()


def market(**overrides: Any) -> dict[str, Any]:
    base = {"symbol": "SOL/USDT", "base": "SOL", "quote": "USDT", "type": "spot", "spot": True, "contract": False,
            "active": True, "precision": {"price": 0.001, "amount": 0.01},
            "limits": {"amount": {"min": 0.1, "max": 1e6}, "cost": {"min": 5.0}}, "maker": 0.0002, "taker": 0.0004}
    return base | overrides


# ---------------------------------------------------------------- instruments


async def test_instruments_take_tick_step_minimums_and_fees_from_the_venue(fake, exchange):
    instruments = await load_instruments(exchange, ["BTC/USDT", "ETH/USDT", "BTC/USDC"])
    btc, eth, usdc = instruments["BTC/USDT"], instruments["ETH/USDT"], instruments["BTC/USDC"]
    assert (btc.tick_size, btc.lot_size, btc.min_qty, btc.min_notional) == (0.01, 0.00001, 0.0001, 5.0)
    assert (eth.tick_size, eth.lot_size, eth.min_qty, eth.min_notional) == (0.05, 0.001, 0.001, 10.0)
    assert (usdc.tick_size, usdc.lot_size, usdc.base, usdc.quote) == (0.1, 0.0001, "BTC", "USDC")
    assert (btc.maker_fee, btc.taker_fee) == (0.001, 0.001)  # ccxt's binance spot fees
    assert btc.violation(0.00002, 50000.0, None) == "min quantity: 2e-05 < 0.0001 for BTC/USDT"
    assert eth.violation(0.001, 3000.02, None) == "tick size: price 3000.02 is not a multiple of 0.05 for ETH/USDT"
    assert eth.violation(0.002, 3000.0, None).startswith("min notional")
    assert [(c.method, c.path) for c in fake.calls] == [("GET", "/api/v3/exchangeInfo")]


async def test_an_unlisted_symbol_names_the_closest_listed_ones(fake, exchange):
    with pytest.raises(VenueInputError, match=r"binance does not list 'BTCUSDT' \(closest listed: BTC/USDT"):
        await load_instruments(exchange, ["BTCUSDT"])
    with pytest.raises(VenueInputError, match="'BTC/USDX'.*BTC/USDT"):
        await load_instruments(exchange, ["BTC/USDX"])
    with pytest.raises(VenueInputError, match="3 markets listed, none close"):
        await load_instruments(exchange, ["DOGE/EUR"])
    assert closest_symbols("btc-usdc", ["BTC/USDT", "BTC/USDC", "ETH/USDT"])[0] == "BTC/USDC"


def test_decimal_places_precision_and_fee_defaults():
    sol = instrument_from_market(market(precision={"price": 3, "amount": 2}, maker=None, taker=None),
                                 DECIMAL_PLACES, maker_fee=0.0005, taker_fee=0.0007)
    assert (sol.tick_size, sol.lot_size, sol.price_decimals) == (0.001, 0.01, 3)
    assert (sol.maker_fee, sol.taker_fee) == (0.0005, 0.0007)
    bare = instrument_from_market(market(limits={"amount": {"min": None}, "cost": {}}), TICK_SIZE)
    assert (bare.min_qty, bare.min_notional, bare.maker_fee) == (0.01, 0.0, 0.0002)  # min qty defaults to one lot


@pytest.mark.parametrize(("overrides", "mode", "message"), [
    ({}, 3, "significant digits"),
    ({"precision": {"price": None, "amount": 0.01}}, TICK_SIZE, "gives no price tick"),
    ({"precision": {"price": 0.0, "amount": 0.01}}, TICK_SIZE, "not a positive step"),
    ({"type": "swap", "contract": True}, TICK_SIZE, "swap market; paper trading through ccxt takes spot"),
    ({"active": False}, TICK_SIZE, "not trading"),
])
def test_markets_that_give_no_usable_grid_are_refused(overrides, mode, message):
    with pytest.raises(VenueInputError, match=message):
        instrument_from_market(market(**overrides), mode)


# ---------------------------------------------------------------- the paper-mode client


def test_an_unknown_exchange_id_names_close_ids():
    with pytest.raises(VenueInputError, match="ccxt has no exchange 'binanse' .*binance"):
        make_exchange("binanse")
    with pytest.raises(VenueInputError, match=r"'zzqqxx' \(ccxt 4.5.90 knows \d+\)"):
        make_exchange("zzqqxx")


@pytest.mark.parametrize("url", [
    "https://api.binance.com", "http://example.com:8080", "http://10.0.0.5:9000", "http://127.0.0.1.nip.io:80",
    "ws://127.0.0.1:9000", "http://user@127.0.0.1:9000", "http://127.0.0.1:9000/?x=1", "127.0.0.1:9000", "",
])
def test_a_base_url_off_this_machine_is_refused(url):
    with pytest.raises(VenueInputError, match="refused: a venue may be redirected only to this machine"):
        make_exchange("binance", url)


@pytest.mark.parametrize(("url", "host"), [
    ("http://127.0.0.1:9000/", "127.0.0.1"), ("http://[::1]:9000", "::1"), ("https://localhost:9000", "localhost")])
async def test_a_loopback_base_url_redirects_every_api_url(url, host):
    exchange = make_exchange("binance", url, QUICK)
    try:
        urls = api_urls(exchange)
        assert len(urls) > 20 and {urlsplit(u).hostname for u in urls} == {host}
        assert exchange.urls["api"]["public"] == url.rstrip("/") + "/api/v3"
        scheme = "wss" if url.startswith("https") else "ws"
        assert exchange.urls["api"]["ws"]["spot"] == f"{scheme}://{url.split('://')[1].rstrip('/')}/stream/ws"
    finally:
        await exchange.close()


async def test_the_paper_client_is_public_only_and_rate_limited():
    exchange = make_exchange("binance", settings=QUICK | {"options": {"watchOrderBook": {"checksum": True}}})
    try:
        assert isinstance(exchange, ccxt.pro.binance)
        assert not exchange.apiKey and not exchange.secret and exchange.enableRateLimit
        assert exchange.options["fetchMarkets"]["types"] == ["spot"]
        assert exchange.options["watchOrderBook"] == {"maxRetries": 1, "checksum": True}
        assert urlsplit(exchange.urls["api"]["public"]).hostname == "api.binance.com"  # no override: the venue
    finally:
        await exchange.close()
    for refused in ({"apiKey": "k"}, {"secret": "s"}, {"urls": {}}, {"hostname": "evil.example"}):
        with pytest.raises(VenueInputError, match="paper mode takes no"):
            make_exchange("binance", settings=refused)


async def test_an_exchange_ccxt_pro_lacks_gets_a_rest_client():
    rest_only = sorted(set(ccxt.exchanges) - set(ccxt.pro.exchanges))[0]
    exchange = make_exchange(rest_only, "http://127.0.0.1:9", QUICK)
    try:
        assert type(exchange) is getattr(ccxt.async_support, rest_only)
        assert_loopback(exchange)
    finally:
        await exchange.close()


# ---------------------------------------------------------------- retry policy


def test_retry_after_and_backoff():
    assert retry_after_s({"Retry-After": "7"}) == 7.0
    assert retry_after_s({"retry-after": "0.5"}) == 0.5
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert retry_after_s(None) is None and retry_after_s({"Content-Type": "json"}) is None
    backoff = Backoff(initial_s=0.5, max_s=4.0, factor=2.0, jitter=0.5)
    first = [backoff.delay(n, random.Random(3)) for n in range(6)]
    assert first == [backoff.delay(n, random.Random(3)) for n in range(6)]  # a seeded rng repeats itself
    for n, delay in enumerate(first):
        base = min(4.0, 0.5 * 2 ** n)
        assert base <= delay <= 1.5 * base
    assert backoff.delay(10_000, random.Random(3)) <= 6.0
