"""Sandbox mode: real orders on the exchange's testnet (here the loopback Binance fake), through ccxt.pro.

The broker is driven directly (orders, cancels, races, lost answers, rate limits) and through a whole session and the
command line; the testnet key and secret never reach anything paperdesk writes or prints.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import ccxt
import pytest

from engine.brokers.ccxt_broker import CcxtBroker, exchange_message, run_tag
from engine.brokers.transcript import Transcribed
from engine.clock import SimClock
from engine.config import AppConfig, ConfigError, parse_config
from engine.model.order import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from engine.model.venue_event import CancelAck, VenueEvent, VenueEventKind
from engine.runtime import build_instruments
from engine.session import PaperSession
from engine.strategy.base import Strategy, StrategyParams
from engine.strategy.registry import register, strategy_kinds
from engine.venues import CcxtVenue
from engine.venues_ccxt import CredentialsError
from tests.fakes.binance import FakeBinance
from tests.venues.conftest import KEY, SECRET
from tests.venues.test_ccxt_paper_session import REPO, ccxt_config, paperdesk, query, tape, toml

K = VenueEventKind


class ScriptParams(StrategyParams):
    pass


class SandboxScript(Strategy):
    """On the first print: a market buy, a limit buy that the test trades through, and one the test cancels."""

    kind = "test_sandbox_script"
    Params = ScriptParams

    def on_start(self) -> None:
        self.done = False

    def on_tick(self, tick: Any) -> None:
        if not self.done:
            self.done = True
            self.buy(tick.symbol, 0.01, reason="market")
            self.buy(tick.symbol, 0.02, price=49900.0, reason="rests, then fills")
            self.buy(tick.symbol, 0.01, price=49000.0, reason="rests, then canceled")


if SandboxScript.kind not in strategy_kinds():
    register(SandboxScript)


def sandbox_config(fake: FakeBinance, strategy: dict[str, Any] | None = None, **venue: Any) -> AppConfig:
    data = ccxt_config(fake.http_url, strategy, mode="sandbox", **venue)
    return parse_config(data)


@pytest.fixture
async def broker(fake: FakeBinance) -> AsyncIterator[CcxtBroker]:
    config = sandbox_config(fake)
    venue = CcxtVenue()
    config = await venue.listed(config)
    made = venue.broker(config, SimClock(1_700_000_000_000_000_000), build_instruments(config))
    assert isinstance(made, CcxtBroker)
    await made.connect()
    yield made
    await made.close()
    await venue.client(config).close()


_seq = 0


def order(qty: float, price: float | None = None, side: OrderSide = OrderSide.BUY,
          tif: TimeInForce = TimeInForce.GTC) -> Order:
    global _seq
    _seq += 1
    return Order(f"O{_seq:07d}", "s", "BTC/USDT", side, qty, OrderType.LIMIT if price else OrderType.MARKET, price,
                 tif=tif, status=OrderStatus.SUBMITTED)


async def until(check: Callable[[], bool], seconds: float = 3.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def kinds(broker: CcxtBroker, client_id: str) -> list[tuple[VenueEventKind, float]]:
    return [(e.kind, e.fill.qty if e.fill else 0.0) for e in broker.events if e.client_id == client_id]


def has(broker: CcxtBroker, client_id: str, kind: VenueEventKind) -> Callable[[], bool]:
    return lambda: any(e.kind is kind and e.client_id == client_id for e in broker.events)


def filled(broker: CcxtBroker, client_id: str) -> float:
    return sum(e.fill.qty for e in broker.events if e.client_id == client_id and e.fill)


def replay(o: Order, events: list[VenueEvent]) -> Order:
    """The order's state after the events, through the order state machine (an illegal move raises)."""
    for e in events:
        if e.client_id != o.client_id:
            continue
        if e.fill is not None:
            o.apply_fill(e.fill.qty, e.fill.price)
        elif e.kind is K.ACCEPTED and o.status is OrderStatus.SUBMITTED:
            o.transition(OrderStatus.ACCEPTED)
        elif e.kind in (K.CANCELED, K.EXPIRED, K.REJECTED) and o.is_open:
            o.transition(OrderStatus(e.kind.value), e.reason)
    return o


# ---------------------------------------------------------------- the broker alone


async def test_market_limit_and_cancel_with_namespaced_client_ids(fake, broker):
    market, rest, canceled = order(0.6), order(0.1, 49000.0), order(0.1, 48000.0)
    for o in (market, rest, canceled):
        broker.submit(o)
    await until(lambda: filled(broker, market.client_id) >= 0.6 and has(broker, canceled.client_id, K.ACCEPTED)()
                and has(broker, rest.client_id, K.ACCEPTED)())
    # walked two levels: two exchange trades, each one fill, ids from the exchange
    fills = [e.fill for e in broker.events if e.fill and e.client_id == market.client_id]
    assert [(f.qty, f.price, f.fill_id) for f in fills if f] == [(0.5, 50010.0, "BTC/USDT#1"),
                                                                (0.1, 50020.0, "BTC/USDT#2")]
    assert all(f is not None and f.fee == pytest.approx(f.qty * 0.001 * f.price) for f in fills)  # base fee, in quote
    assert sorted(o.client_id for o in fake.exchange.orders.values()) == [  # sent at once: any order of arrival
        f"{broker.tag}-{o.client_id}" for o in (market, rest, canceled)]

    assert broker.cancel(canceled.client_id, "not wanted") is CancelAck.PENDING
    await until(has(broker, canceled.client_id, K.CANCELED))
    await fake.trade("BTC/USDT", "49000", "1")
    await until(lambda: filled(broker, rest.client_id) >= 0.1)
    assert broker.cancel(rest.client_id, "too late") is CancelAck.UNKNOWN
    assert [e.reason for e in broker.events if e.kind is K.CANCELED] == ["not wanted"]
    assert replay(canceled, list(broker.events)).status is OrderStatus.CANCELED
    assert replay(rest, list(broker.events)).status is OrderStatus.FILLED
    assert replay(market, list(broker.events)).status is OrderStatus.FILLED
    latency = broker.latency_ms()
    assert {"load_markets", "fetch_balance", "create_order", "cancel_order", "order_ack"} <= set(latency)
    assert latency["order_ack"]["count"] == 3
    ack = next(e for e in broker.events if e.kind is K.ACCEPTED)
    assert ack.latency_ns > 0  # what the order-latency breaker observes
    account = await broker.account()
    assert account.balances["BTC"] == pytest.approx(1 + 0.7 * 0.999) and account.open_orders == ()


async def test_the_order_stream_reads_on_past_a_report_ccxt_cannot_read(fake, broker):
    o = order(0.3, 49900.0)
    broker.submit(o)
    await until(has(broker, o.client_id, K.ACCEPTED))
    [placed] = [x.order_id for x in fake.exchange.orders.values() if x.client_id.endswith(o.client_id)]
    await fake.garbled_report(placed, q="NaN")
    await until(lambda: "could not read" in broker.health()["last_error"])
    assert broker.health()["last_error"].startswith("dropped a message ccxt could not read (ValueError: ")
    await fake.trade("BTC/USDT", "49900", "0.1")  # its fill still comes over the same socket
    await until(lambda: filled(broker, o.client_id) >= 0.1)
    assert kinds(broker, o.client_id) == [(K.ACCEPTED, 0.0), (K.FILLED, 0.1)]


async def test_partial_fills_are_applied_once_though_rest_reports_them_again(fake, broker):
    o = order(0.3, 49900.0)
    broker.submit(o)
    await until(has(broker, o.client_id, K.ACCEPTED))
    await fake.trade("BTC/USDT", "49900", "0.1")
    await until(lambda: filled(broker, o.client_id) >= 0.1)
    checks = broker.health()["rest_checks"]
    broker._check_due = True  # as after a reconnect: the trades come back over REST
    await until(lambda: broker.health()["rest_checks"] > checks)
    await asyncio.sleep(0.2)
    assert kinds(broker, o.client_id) == [(K.ACCEPTED, 0.0), (K.FILLED, 0.1)]
    await fake.trade("BTC/USDT", "49850", "1")
    await until(lambda: filled(broker, o.client_id) >= 0.3 - 1e-9)
    assert kinds(broker, o.client_id) == [(K.ACCEPTED, 0.0), (K.FILLED, 0.1), (K.FILLED, pytest.approx(0.2))]
    assert replay(o, list(broker.events)).status is OrderStatus.FILLED


@pytest.mark.parametrize("race_qty", [None, "0.05"])
async def test_a_cancel_racing_a_fill_ends_consistent_without_a_duplicate_fill(fake, broker, race_qty):
    o = order(0.2, 49000.0)
    broker.submit(o)
    await until(has(broker, o.client_id, K.ACCEPTED))
    fake.race_cancel(f"{broker.tag}-{o.client_id}", race_qty)
    assert broker.cancel(o.client_id, "changed my mind") is CancelAck.PENDING
    if race_qty is None:  # the fill won: the cancel is refused (-2011) and the order is filled
        await until(lambda: filled(broker, o.client_id) >= 0.2)
        await asyncio.sleep(0.3)
        assert kinds(broker, o.client_id) == [(K.ACCEPTED, 0.0), (K.FILLED, 0.2)]
        assert replay(o, list(broker.events)).status is OrderStatus.FILLED
    else:  # part filled first, the rest canceled
        await until(has(broker, o.client_id, K.CANCELED))
        await asyncio.sleep(0.3)
        assert kinds(broker, o.client_id) == [(K.ACCEPTED, 0.0), (K.FILLED, 0.05), (K.CANCELED, 0.0)]
        final = replay(o, list(broker.events))
        assert (final.status, final.filled_qty) == (OrderStatus.CANCELED, 0.05)
    assert len(fake.exchange.fills) == 1


@pytest.mark.parametrize("unknown", [
    ccxt.RequestTimeout("binance POST http://127.0.0.1/api/v3/order request timeout"),
    # what ccxt makes of Binance's -1006: not a network error, and still no answer about the order
    ccxt.OperationFailed('binance {"code":-1006,"msg":"Execution status unknown."}')], ids=["timeout", "-1006"])
@pytest.mark.parametrize("arrived", [True, False])
async def test_a_lost_answer_is_looked_up_before_any_resend(fake, broker, arrived, unknown):
    real = broker.exchange.create_order
    broker.recv_window_s = 0.6  # Binance's is 10 s (+1 s of skew): how long the lost request may still arrive
    calls = 0
    sent_at: list[float] = []

    async def lost(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        sent_at.append(asyncio.get_running_loop().time())
        if calls == 1:
            if arrived:
                await real(*args)  # the order reached the exchange; its answer did not reach us
            await fake.disconnect()  # and the user stream drops with it
            raise unknown
        return await real(*args)

    broker.exchange.create_order = lost
    o = order(0.2, 49000.0)
    broker.submit(o)
    placing = broker._orders[o.client_id].placing
    assert placing is not None
    await until(placing.done)
    assert has(broker, o.client_id, K.ACCEPTED)()
    assert len(fake.exchange.orders) == 1 and calls == (1 if arrived else 2)
    lookups = [c.params.get("origClientOrderId") for c in fake.calls if c.method == "GET" and c.path == "/api/v3/order"]
    if arrived:
        assert lookups == [f"{broker.tag}-{o.client_id}"]
    else:  # not found: looked up again until the window is over, and only then sent again
        assert len(lookups) >= 2 and set(lookups) == {f"{broker.tag}-{o.client_id}"}
        assert sent_at[1] - sent_at[0] >= broker.recv_window_s
    # the stream comes back (subscribed again) and still reports the order
    await until(lambda: broker.health()["stream"] == "up" and broker.health()["reconnects"] >= 1)
    await fake.fill(f"{broker.tag}-{o.client_id}")
    await until(lambda: filled(broker, o.client_id) >= 0.2, 8.0)
    await asyncio.sleep(0.2)
    assert kinds(broker, o.client_id) == [(K.ACCEPTED, 0.0), (K.FILLED, 0.2)]


async def test_a_rate_limit_backs_off_shows_in_health_and_sends_one_order(fake, broker):
    fake.fail_next(1, 429, retry_after=0)
    o = order(0.01)
    broker.submit(o)
    await until(lambda: filled(broker, o.client_id) >= 0.01)
    assert len(fake.exchange.orders) == 1
    health = broker.health()
    assert health["rate_limited"] == 1 and health["retries"] == 1 and "Too many requests" in health["last_error"]
    posts = [c.status for c in fake.calls if c.method == "POST" and c.path == "/api/v3/order"]
    assert posts == [429, 200]


async def test_stops_and_unknown_types_are_rejected_not_sent(fake, broker):
    stop = Order("O9999999", "s", "BTC/USDT", OrderSide.SELL, 0.01, OrderType.STOP, stop_price=49000.0)
    broker.submit(stop)
    [event] = list(broker.events)
    assert event.kind is K.REJECTED and "STOP" in event.reason
    assert not broker.capabilities.native_stops and not fake.exchange.orders


async def test_an_exchange_refusal_is_rejected_with_its_message(fake, broker):
    o = order(0.00001, 40000.0)  # 0.4 USDT: under the 5 USDT minimum notional
    broker.submit(o)
    await until(has(broker, o.client_id, K.REJECTED))
    assert [e.reason for e in broker.events] == ["-1013 Filter failure: NOTIONAL"]


async def test_orders_already_open_at_connect_are_reported_and_left(fake, caplog):
    fake.exchange.place({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                         "quantity": "0.1", "price": "48000", "newClientOrderId": "from-yesterday"})
    config = sandbox_config(fake)
    venue = CcxtVenue()
    config = await venue.listed(config)
    made = venue.broker(config, SimClock(1), build_instruments(config))
    with caplog.at_level("WARNING", "paperdesk.venue"):
        await made.connect()
    await made.close()
    await venue.client(config).close()
    assert any("from-yesterday" in r.getMessage() and "left alone" in r.getMessage() for r in caplog.records)
    assert fake.exchange.resolve("from-yesterday").status == "NEW"


# ---------------------------------------------------------------- keys


async def test_a_missing_variable_is_one_message_naming_it_before_any_database(fake, monkeypatch, tmp_path):
    monkeypatch.delenv("BINANCE_TESTNET_SECRET")
    session = PaperSession(sandbox_config(fake), db_path=tmp_path / "desk.sqlite")
    with pytest.raises(CredentialsError) as refused:
        await session.open()
    assert str(refused.value) == (
        "venue.mode = 'sandbox' needs the binance testnet API key and secret in the environment: "
        "BINANCE_TESTNET_SECRET is not set (venue.key_env and venue.secret_env name other variables). Nothing was "
        "sent to binance")
    assert isinstance(refused.value, ConfigError) and not (tmp_path / "desk.sqlite").exists()
    assert fake.calls == []


async def test_a_wrong_secret_is_one_message_naming_the_variables_not_the_values(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("MY_KEY", KEY)
    monkeypatch.setenv("MY_SECRET", "not-the-secret")
    config = sandbox_config(fake, key_env="MY_KEY", secret_env="MY_SECRET")
    session = PaperSession(config, db_path=tmp_path / "desk.sqlite")
    with pytest.raises(CredentialsError) as refused:
        await session.open()
    text = str(refused.value)
    assert text == ("binance (sandbox) refused the testnet key in MY_KEY or its secret in MY_SECRET "
                    "(-1022 Signature for this request is not valid.). Nothing was traded")
    assert KEY not in text and "not-the-secret" not in text
    assert not (tmp_path / "desk.sqlite").exists() and not fake.exchange.orders


def test_a_key_pasted_where_its_variable_name_belongs_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as refused:
        parse_config(ccxt_config("http://127.0.0.1:9", mode="sandbox", secret_env="c0ffee5e4b1d9a77"), "c.toml")
    assert "c0ffee5e4b1d9a77" not in str(refused.value) and "venue.secret_env: must name" in str(refused.value)
    with pytest.raises(ConfigError, match="venue.key_env: applies to venue.mode = 'sandbox' only"):
        parse_config(ccxt_config("http://127.0.0.1:9", key_env="MY_KEY"), "c.toml")


# ---------------------------------------------------------------- sessions


async def swings(fake: FakeBinance, trades: int = 80) -> None:
    """Once the broker has subscribed: prints swing between two prices each second, so the closes of 1 s bars
    alternate and sma_crossover(2, 3) crosses once its slow average has warmed up. Ten trades a second."""
    await until(lambda: any(c.method == "userDataStream.subscribe.signature" for c in fake.calls), 20.0)
    for i in range(trades):
        await fake.trade("BTC/USDT", "49900" if i // 10 % 2 else "50100", "0.01")
        await asyncio.sleep(0.1)


async def test_a_sandbox_session_trades_end_to_end(fake, tmp_path):
    db = tmp_path / "desk.sqlite"
    script = {"name": "script", "kind": "test_sandbox_script", "symbols": ["BTC/USDT"], "params": {}}
    session = PaperSession(sandbox_config(fake, script), db_path=db)
    await session.open()
    transcribed = session.engine.broker
    assert isinstance(transcribed, Transcribed)
    broker = transcribed.inner
    assert isinstance(broker, CcxtBroker)
    [(market_start,)] = query(db, "SELECT market_start_ns FROM sessions")
    assert broker.tag == run_tag(market_start)  # the exchange's client ids can be traced back to the session

    async def drive() -> None:
        oms = session.engine.oms
        await until(lambda: len(oms.orders) == 3 and all(o.status is not OrderStatus.SUBMITTED
                                                         for o in oms.orders.values()), 5.0)
        await fake.trade("BTC/USDT", "49900", "1")
        assert oms.cancel("O0000003", "the test cancels it")

    market = asyncio.create_task(tape(fake, 2.5))
    driver = asyncio.create_task(drive())
    await session.run(duration=3.0)
    await market
    await driver
    await broker.close()
    assert query(db, "SELECT client_id, status, filled_qty FROM orders ORDER BY client_id") == [
        ("O0000001", "FILLED", 0.01), ("O0000002", "FILLED", 0.02), ("O0000003", "CANCELED", 0.0)]
    assert query(db, "SELECT fill_id, client_id, qty, price, basis FROM fills ORDER BY client_id") == [
        ("BTC/USDT#1", "O0000001", 0.01, 50010.0, "VENUE"), ("BTC/USDT#2", "O0000002", 0.02, 49900.0, "VENUE")]
    assert sorted(o.client_id for o in fake.exchange.orders.values()) == [
        f"{broker.tag}-O000000{n}" for n in (1, 2, 3)]

    again = PaperSession(sandbox_config(fake, script), db_path=db)
    await again.open()  # resumed from what the exchange reported, then reconciled with it: nothing is sent again
    assert again.recovered is not None and len(again.engine.fills) == 2 and not again.engine.open_orders()
    await again.close()
    await again.engine.broker.close()
    await again.feed.close()
    assert len(fake.exchange.orders) == 3


def saved_fills(db: Path) -> int:
    """How many fills the session in another process has saved so far (0 before it has made its tables)."""
    if not db.exists():
        return 0
    try:
        return int(query(db, "SELECT COUNT(*) FROM fills")[0][0])
    except sqlite3.OperationalError as early:  # the child creates the file, then its tables
        assert "no such table" in str(early)
        return 0


async def test_the_keys_reach_nothing_paperdesk_writes_or_prints(fake, tmp_path):
    sma = {"name": "sma_btc", "kind": "sma_crossover", "symbols": ["BTC/USDT"], "timeframe": "1s",
           "params": {"fast": 2, "slow": 3, "size": 0.01}}
    config, db = tmp_path / "testnet.toml", tmp_path / "desk.sqlite"
    data = ccxt_config(fake.http_url, sma, mode="sandbox")
    config.write_text(toml(data))
    # the market swings until a fill is saved, then goes quiet, then the session is asked to stop: a fixed
    # duration was a race on a loaded machine (the crossover needs four 1 s bars, so 6 s sometimes saw no order)
    market = asyncio.create_task(swings(fake, trades=300))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console.cli", "run", "--no-ui", "--duration", "60", "--config", str(config),
        "--db", str(db), cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await until(lambda: saved_fills(db) > 0, 45.0)
        market.cancel()
        await asyncio.sleep(1.0)  # so no order is still on its way when the session stops
        child.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(child.communicate(), 30)
    finally:
        market.cancel()
        if child.returncode is None:
            child.kill()
            await child.wait()
    code, out, err = child.returncode, stdout.decode(), stderr.decode()
    assert code == 0 and "Traceback" not in err, err
    assert " start venue=binance(sandbox) " in out.splitlines()[0]
    statuses = query(db, "SELECT status FROM orders")
    assert statuses and set(statuses) == {("FILLED",)}  # orders went to the exchange and filled
    assert fake.exchange.orders and any(call.signed for call in fake.calls)
    printed = [out, err]
    for args in (("status", "--db", str(db)), ("export", "--what", "orders", "--db", str(db)),
                 ("report", "--db", str(db))):
        code, out, err = await paperdesk(*args)
        assert code == 0, (args, err)
        printed += [out, err]
    for text in printed:
        assert KEY not in text and SECRET not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data_bytes = path.read_bytes()
            assert KEY.encode() not in data_bytes and SECRET.encode() not in data_bytes, path


def test_a_signed_request_in_an_error_is_cut_before_it_reaches_a_log_or_the_database():
    text = exchange_message(ccxt.ExchangeNotAvailable(
        "binance GET http://127.0.0.1:9/api/v3/account?timestamp=1&recvWindow=10000&signature=f6e606abc refused"))
    assert text == "ExchangeNotAvailable: binance GET http://127.0.0.1:9/api/v3/account?... refused"


def test_a_password_written_into_the_url_is_not_repeated_when_the_url_is_refused(fake):
    with pytest.raises(ConfigError) as refused:
        parse_config(sandbox_config(fake).model_dump(mode="json") | {"venue": {
            "kind": "ccxt", "exchange": "binance", "mode": "paper", "url": "http://me:MYSECRET@10.0.0.1:8080"}})
    assert "venue.url" in str(refused.value) and "MYSECRET" not in str(refused.value)
