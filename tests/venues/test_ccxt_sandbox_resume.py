"""A sandbox session resumed after kill -9: rebuilt from what the exchange reported (its transcript), then reconciled
with the exchange: an order filled while we were down is applied exactly once, nothing is sent again, and what the
saved state cannot explain (an order of this session it never saved, balances its fills do not account for) halts
trading with a message naming it.

The real ccxt.pro binance client against the loopback Binance fake, a real SQLite database, no network."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from engine.breakers.trading_state import PORTFOLIO, TradingState
from engine.brokers.broker import Broker
from engine.brokers.ccxt_broker import CcxtBroker
from engine.brokers.transcript import Transcribed
from engine.clock import Clock
from engine.config import AppConfig
from engine.model.instrument import Instrument
from engine.model.order import OrderStatus
from engine.session import PaperSession
from engine.venues import CcxtVenue
from tests.fakes.binance import FakeBinance
from tests.store.helpers import crash, query
from tests.venues.test_ccxt_resume import LIMIT, TakeAndRest, market, trade_until
from tests.venues.test_ccxt_sandbox import sandbox_config


class ShortWindow(CcxtVenue):
    """Binance's receive window is 10 s; the tests wait out a shorter one."""

    def broker(self, config: AppConfig, clock: Clock, instruments: dict[str, Instrument]) -> Broker:
        broker = super().broker(config, clock, instruments)
        assert isinstance(broker, CcxtBroker)
        broker.recv_window_s = 0.5
        return broker


def config_for(fake: FakeBinance) -> AppConfig:
    return sandbox_config(fake, {"name": "rest", "kind": TakeAndRest.kind, "symbols": ["BTC/USDT"],
                                 "params": {"size": 0.01}})


def venue_of(session: PaperSession) -> CcxtBroker:
    broker = session.engine.broker
    assert isinstance(broker, Transcribed) and isinstance(broker.inner, CcxtBroker)
    return broker.inner


@pytest.fixture
async def tape(fake: FakeBinance) -> AsyncIterator[None]:
    """Prints at 50010 every 100 ms: the market buy fills, the limit buy rests."""
    running = asyncio.create_task(market(fake, 60.0))
    yield
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


async def crashed(db: Path, config: AppConfig, venue: CcxtVenue | None = None,
                  lose_the_limit: bool = False) -> PaperSession:
    """A session whose market buy filled and whose limit buy rests (or, lose_the_limit, never reached the exchange),
    dropped as kill -9 would once both are saved."""
    a = PaperSession(config, db_path=db, venue=venue)
    await a.open()
    if lose_the_limit:
        broker = venue_of(a)
        real = broker.exchange.create_order

        async def lost(*args: Any) -> Any:
            if args[1] == "limit":
                raise ccxt.RequestTimeout("binance POST http://127.0.0.1/api/v3/order request timeout")
            return await real(*args)

        broker.exchange.create_order = lost
        broker.recv_window_s = 60.0  # still waiting for it when the process dies
    orders = a.engine.oms.orders

    def placed() -> bool:
        return len(orders) == 2 and orders["O0000001"].status is OrderStatus.FILLED and (
            lose_the_limit or orders["O0000002"].status is OrderStatus.ACCEPTED)

    await trade_until(a, placed)
    assert a.writer is not None and await a.writer.flush()
    await crash(a)
    await a.engine.broker.close()  # the process is gone: so are its connections
    await a.feed.close()
    return a


async def close(session: PaperSession) -> None:
    await session.close()
    await session.engine.broker.close()
    await session.feed.close()


async def test_an_order_filled_while_the_session_was_down_is_applied_exactly_once(fake, tape, tmp_path):
    db, config = tmp_path / "desk.sqlite", config_for(fake)
    a = await crashed(db, config)
    tag = venue_of(a).tag
    await fake.fill(f"{tag}-O0000002")  # the exchange fills the resting order while we are down

    b = PaperSession(config, db_path=db)
    await b.open()
    venue = venue_of(b)
    assert venue.mismatch is None and venue.prefix == f"{tag}.1"
    assert venue.reconciliation is not None
    assert "1 order(s) the session had working (1 filled while away)" in venue.reconciliation
    assert "1 fill(s) from while it was down applied once" in venue.reconciliation
    assert "balances as its fills say" in venue.reconciliation
    assert b.snapshot().venue is not None and b.snapshot().venue.reconciliation == venue.reconciliation
    await b.run(duration=1.0)

    assert query(db, "SELECT client_id, status, filled_qty FROM orders ORDER BY client_id") == [
        ("O0000001", "FILLED", 0.01), ("O0000002", "FILLED", 0.01)]
    fills = query(db, "SELECT fill_id, client_id, qty, price FROM fills ORDER BY client_id")
    assert [(cid, qty, price) for _, cid, qty, price in fills] == [("O0000001", 0.01, 50010.0),
                                                                   ("O0000002", 0.01, LIMIT)]
    assert len({fill_id for fill_id, *_ in fills}) == 2
    assert len(fake.exchange.orders) == 2  # nothing was sent again
    assert b.engine.guard.states.state(PORTFOLIO) is TradingState.ACTIVE
    heard = query(db, "SELECT kind FROM venue_events WHERE client_id = 'O0000002' ORDER BY n")
    assert [k for (k,) in heard] == ["SENT", "ACCEPTED", "FILLED"]

    c = PaperSession(config, db_path=db)
    await c.open()  # a clean restart: rebuilt from the transcript, nothing new at the exchange
    assert [f.fill_id for f in c.engine.fills] == [fill_id for fill_id, *_ in fills]
    assert venue_of(c).reconciliation is not None and "0 order(s)" in venue_of(c).reconciliation
    assert venue_of(c).mismatch is None and venue_of(c).prefix == f"{tag}.2"
    await close(c)
    assert len(fake.exchange.orders) == 2


async def test_an_order_of_this_session_that_was_never_saved_halts_trading_and_is_named(fake, tape, tmp_path):
    db, config = tmp_path / "desk.sqlite", config_for(fake)
    a = await crashed(db, config)
    tag = venue_of(a).tag
    # sent in the moment before the crash, after the last saved step: the saved state does not know it
    fake.exchange.place({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                         "quantity": "0.01", "price": "49000", "newClientOrderId": f"{tag}-O0000003"})

    b = PaperSession(config, db_path=db)
    await b.open()
    venue = venue_of(b)
    assert venue.mismatch is not None and f"{tag}-O0000003" in venue.mismatch
    assert "not in its saved state" in venue.mismatch and "MISMATCH" in (venue.reconciliation or "")
    assert b.engine.guard.states.state(PORTFOLIO) is TradingState.HALTED
    assert venue.prefix == f"{tag}.1"  # what it sends from now on cannot take that order's id
    await close(b)
    [(command, source, ok)] = query(db, "SELECT command, source, ok FROM commands")
    assert (command, source, ok) == ("halt", "reconciliation", 1)

    c = PaperSession(config, db_path=db)
    await c.open()  # the halt is part of the session now: a replay halts at the same point
    assert c.engine.guard.states.state(PORTFOLIO) is TradingState.HALTED
    await close(c)


async def test_balances_the_session_s_fills_do_not_explain_halt_trading(fake, tape, tmp_path):
    db, config = tmp_path / "desk.sqlite", config_for(fake)
    await crashed(db, config)
    fake.exchange.balance("USDT").free -= Decimal("250")  # someone else traded on this testnet account meanwhile

    b = PaperSession(config, db_path=db)
    await b.open()
    venue = venue_of(b)
    assert venue.mismatch is not None and venue.mismatch.startswith("USDT: the exchange holds")
    assert "BTC" not in venue.mismatch  # the base asset is where the fills say
    assert b.engine.guard.states.state(PORTFOLIO) is TradingState.HALTED
    await close(b)


async def test_an_order_that_never_reached_the_exchange_is_rejected_once_its_window_is_over(fake, tape, tmp_path):
    db, config = tmp_path / "desk.sqlite", config_for(fake)
    await crashed(db, config, lose_the_limit=True)
    assert len(fake.exchange.orders) == 1

    b = PaperSession(config, db_path=db, venue=ShortWindow())
    await b.open()
    venue = venue_of(b)
    assert venue.mismatch is None
    assert "1 never reached the exchange" in (venue.reconciliation or "")
    await b.run(duration=0.5)
    [(status, reason)] = query(db, "SELECT status, reason FROM orders WHERE client_id = 'O0000002'")
    assert status == "REJECTED" and "never reached the exchange" in reason
    assert len(fake.exchange.orders) == 1  # looked up, never sent again


async def test_a_sandbox_session_saved_before_its_reports_were_is_refused_and_left_alone(fake, tape, tmp_path):
    import sqlite3

    from engine.store.recovery import RecoveryError

    db, config = tmp_path / "desk.sqlite", config_for(fake)
    await crashed(db, config)
    with sqlite3.connect(db) as conn:  # what a sandbox session of an older paperdesk left: orders, no transcript
        conn.execute("DELETE FROM venue_events")
    before = db.read_bytes()
    b = PaperSession(config, db_path=db)
    with pytest.raises(RecoveryError, match="before paperdesk saved what such a venue reports.*--new-session"):
        await b.open()
    assert db.read_bytes() == before and len(fake.exchange.orders) == 2


async def test_kill_9_while_a_take_profit_rests_then_the_exchange_fills_it_and_the_restart_reconciles_once(
        fake, tmp_path):
    """The issue's scenario with the real command: sma_crossover enters, its take-profit rests on the exchange, the
    process is killed -9, the exchange fills the take-profit meanwhile, and the next run applies that fill once."""
    import os
    import signal
    import sys

    from tests.venues.test_ccxt_paper_session import REPO, ccxt_config, paperdesk, toml
    from tests.venues.test_ccxt_sandbox import swings

    sma = {"name": "sma_btc", "kind": "sma_crossover", "symbols": ["BTC/USDT"], "timeframe": "1s",
           "params": {"fast": 2, "slow": 3, "size": 0.01}, "exits": {"take_profit_pct": 0.05}}
    config, db = tmp_path / "testnet.toml", tmp_path / "desk.sqlite"
    config.write_text(toml(ccxt_config(fake.http_url, sma, mode="sandbox")))
    market = asyncio.create_task(swings(fake))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config), "--db", str(db), cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    resting: list[tuple[str, str]] = []
    try:
        for _ in range(300):  # until the take-profit's acknowledgement is saved
            await asyncio.sleep(0.1)
            if not db.exists():
                continue
            try:
                resting = query(db, "SELECT o.client_id, v.venue_ref FROM orders o JOIN venue_events v ON "
                                    "v.client_id = o.client_id AND v.kind = 'SENT' WHERE o.type = 'LIMIT' AND "
                                    "o.side = 'SELL' AND o.status = 'ACCEPTED'")
            except sqlite3.OperationalError as early:  # the child creates the file, then its tables
                assert "no such table" in str(early)
                continue
            if resting:
                break
        assert resting, "the take-profit never rested"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
        market.cancel()
        await asyncio.gather(market, return_exceptions=True)
    [(take_profit, ref)] = resting
    before = dict(query(db, "SELECT fill_id, client_id FROM fills"))
    await fake.fill(ref)  # the exchange fills it while the session is down

    code, out, err = await paperdesk("run", "--no-ui", "--duration", "2", "--config", str(config), "--db", str(db))
    assert code == 0, err
    reconciled = [line for line in out.splitlines() if " reconciled binance (sandbox): " in line]
    assert len(reconciled) == 1 and "(1 filled while away)" in reconciled[0], out
    assert "applied once; balances as its fills say" in reconciled[0]
    fills = query(db, "SELECT fill_id, client_id FROM fills")
    assert len(fills) == len({f for f, _ in fills})  # no fill twice
    assert [cid for _, cid in fills if cid == take_profit] == [take_profit] and take_profit not in before.values()
    assert query(db, f"SELECT status FROM orders WHERE client_id = '{take_profit}'") == [("FILLED",)]
    ours = [o for o in fake.exchange.orders.values() if o.client_id.split("-", 1)[1] in {c for _, c in fills}]
    assert len(ours) == len({c for _, c in fills})  # each filled order went to the exchange once


async def test_a_stop_loss_is_held_by_the_engine_across_a_resume_and_sent_as_a_market_order_when_it_triggers(
        fake, tape, tmp_path):
    """Binance's testnet is sent no stop: the engine holds the bracket's stop-loss (rebuilt by the replay after a
    crash, never handed to the exchange) and sells at market once a print goes through it."""
    db = tmp_path / "desk.sqlite"
    config = sandbox_config(fake, {"name": "first", "kind": "test_buy_first_tick", "symbols": ["BTC/USDT"],
                                   "params": {"size": 0.01}, "exits": {"stop_loss_pct": 0.002}})
    a = PaperSession(config, db_path=db)
    await a.open()
    orders = a.engine.oms.orders
    await trade_until(a, lambda: len(orders) == 2 and orders["O0000002"].status is OrderStatus.ACCEPTED)
    stop = orders["O0000002"]
    assert stop.type.value == "STOP" and "stop emulated by the engine: binance (sandbox) has no native stops" in (
        stop.reason)
    assert a.writer is not None and await a.writer.flush()
    await crash(a)
    await a.engine.broker.close()
    await a.feed.close()
    assert len(fake.exchange.orders) == 1  # the entry only

    b = PaperSession(config, db_path=db)
    await b.open()
    assert [o.client_id for o in b.engine.open_orders()] == ["O0000002"]  # rebuilt by the replay
    assert venue_of(b).reconciliation is not None and "0 order(s)" in venue_of(b).reconciliation

    async def falls() -> None:
        await asyncio.sleep(0.5)
        await fake.trade("BTC/USDT", "49800", "0.01")  # through the stop (50010 * 0.998 = 49909.98)

    await asyncio.gather(b.run(duration=2.0), falls())
    assert query(db, "SELECT status, filled_qty FROM orders WHERE client_id = 'O0000002'") == [("FILLED", 0.01)]
    sent = [o for o in fake.exchange.orders.values() if o.client_id.endswith("-O0000002")]
    assert len(sent) == 1 and sent[0].client_id.startswith(f"{venue_of(b).tag}.1-")  # a market sell, sent after it
    assert query(db, "SELECT side, qty FROM fills WHERE client_id = 'O0000002'") == [("SELL", 0.01)]
