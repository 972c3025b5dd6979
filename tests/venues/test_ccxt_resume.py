"""A ccxt paper session resumed after a crash: its recording replays (every saved fill verified), then it continues on
the exchange's live data, the downtime recorded as a feed gap. (A sandbox session, whose orders the exchange holds, is
resumed by reconciling: tests/venues/test_ccxt_sandbox_resume.py.)

The real ccxt.pro binance client against the loopback Binance fake, a real SQLite database, no network."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.breakers.trading_state import PORTFOLIO, TradingState
from engine.config import AppConfig, parse_config
from engine.model.market import TradeTick
from engine.session import PaperSession, StoppedBeforeStart
from engine.strategy.base import Strategy
from engine.strategy.registry import register, strategy_kinds
from engine.validation.validate import validate
from tests.fakes.binance import FakeBinance
from tests.store.helpers import crash, query
from tests.venues.test_ccxt_paper_session import FirstTickParams, ccxt_config, paperdesk

LIMIT = 49900.0  # under the fake's best bid: the order rests until a print trades through it
PAUSE_S = 1.5  # the latency breaker's pause, market time: shorter than the downtime


class TakeAndRest(Strategy):
    """On the first print: a market buy (a fill before the crash) and a resting limit buy (to fill after it)."""

    kind = "test_take_and_rest"
    Params = FirstTickParams

    def on_start(self) -> None:
        self.bought = False

    def on_tick(self, tick: TradeTick) -> None:
        if not self.bought:
            self.bought = True
            self.buy(tick.symbol, self.params.size, reason="take")
            self.buy(tick.symbol, self.params.size, price=LIMIT, reason="rest")


if TakeAndRest.kind not in strategy_kinds():
    register(TakeAndRest)


def resume_config(address: str) -> AppConfig:
    data = ccxt_config(address, {"name": "rest", "kind": TakeAndRest.kind, "symbols": ["BTC/USDT"],
                                 "params": {"size": 0.01}}, latency_ms=300.0)
    # an acknowledgement slower than 0.1 s pauses trading for PAUSE_S of market time: a cooldown to run out while down
    data["breakers"] = {"order_latency_seconds": 0.1, "latency_pause_hours": PAUSE_S / 3600, "evaluate_seconds": 0.1}
    return parse_config(data)


async def market(fake: FakeBinance, seconds: float, price: str = "50010") -> None:
    """Prints at price and a changing book every 100 ms."""
    for i in range(int(seconds * 10)):
        await fake.trade("BTC/USDT", price, "0.01")
        await fake.update_book("BTC/USDT", bids=[("49990", str(1 + i % 3))])
        await asyncio.sleep(0.1)


async def trade_until(session: PaperSession, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """What run() does with each batch, by hand, so the test can crash the session between two of them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        assert loop.time() < deadline, "the session never got there"
        session.apply(await session.feed.receive())
        assert session.writer is not None
        await session.writer.make_room()


async def crashed_session(fake: FakeBinance, db: Path, config: AppConfig) -> PaperSession:
    """A session that filled, rests a limit order and is paused by the latency breaker, dropped as kill -9 would."""
    a = PaperSession(config, db_path=db)
    await a.open()
    engine = a.engine
    await trade_until(a, lambda: bool(engine.fills) and engine.guard.states.state(PORTFOLIO) is TradingState.PAUSED)
    assert a.writer is not None and await a.writer.flush()
    loop = asyncio.get_running_loop()
    later = loop.time() + 0.3
    await trade_until(a, lambda: loop.time() > later)  # queued, maybe committed: the crash decides
    await crash(a)
    await a.feed.close()  # the process is gone: so are its connections
    return a


async def test_a_crashed_ccxt_session_replays_then_continues_on_live_data_after_a_gap(fake, tmp_path):
    db, config = tmp_path / "desk.sqlite", resume_config(fake.http_url)
    tape = asyncio.create_task(market(fake, 30.0))
    try:
        a = await crashed_session(fake, db, config)
        durable = query(db, "SELECT fill_id, client_id, side, qty, price, fee, ts FROM fills ORDER BY fill_id")
        assert [(side, qty, price) for _, _, side, qty, price, _, _ in durable] == [("BUY", 0.01, 50010.0)]
        (seq_before, last_ts), = query(db, "SELECT market_seq, ts FROM venue_state")
        (paused_ts, paused_line), = query(db, "SELECT market_ts, detail FROM state_events WHERE scope = 'portfolio' "
                                             "AND kind = 'PAUSED'")
        resting = [o.client_id for o in a.engine.orders.values() if o.price == LIMIT]
        assert len(resting) == 1
        await asyncio.sleep(2.0)  # the exchange goes on without us: the pause runs out while we are down

        b = PaperSession(config, db_path=db)
        await b.open()
        assert b.recovered is not None and b.recovered.restarts == 1 and b.recovered.events == seq_before
        assert b.recovered.last_ts == last_ts and b.clock.now_ns() == last_ts  # the recording's end, until live data
        assert sorted((f.fill_id, f.client_id, f.side.name, f.qty, f.price, f.fee, f.ts)
                      for f in b.engine.fills) == durable
        assert b.engine.guard.states.state(PORTFOLIO) is TradingState.PAUSED  # rebuilt, not yet run out
        assert [o.client_id for o in b.engine.open_orders()] == resting
        assert b.engine.strategies["rest"].bought  # the replay rebuilt it: no second first-print buy

        async def through() -> None:  # the live market trades through the resting order
            await asyncio.sleep(0.8)
            await market(fake, 0.6, price="49890")

        await asyncio.gather(b.run(duration=2.5), through())
    finally:
        tape.cancel()

    fills = query(db, "SELECT fill_id, client_id, side, qty, price, fee, ts FROM fills ORDER BY fill_id")
    assert fills[:len(durable)] == durable and len(fills) == len(durable) + 1  # nothing lost, nothing doubled
    (_, client_id, side, qty, price, _, ts), = fills[len(durable):]
    assert (client_id, side, qty, price) == (resting[0], "BUY", 0.01, LIMIT) and ts > last_ts
    assert query(db, "SELECT COUNT(*), COUNT(DISTINCT fill_id) FROM fills") == [(2, 2)]
    assert dict(query(db, "SELECT client_id, status FROM orders")) == {o.client_id: o.status.value
                                                                     for o in b.engine.orders.values()}
    seqs = [s for (s,) in query(db, "SELECT seq FROM market_data ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > seq_before  # no event twice, none missing

    (gap_ts, detail), = query(db, "SELECT market_ts, detail FROM state_events WHERE scope = 'feed' AND kind = 'GAP'")
    live = query(db, f"SELECT ts, kind FROM market_data WHERE seq > {seq_before} ORDER BY seq")
    first_data = next(i for i, (_, kind) in enumerate(live) if kind != "clock")
    gap_end = max(ts for ts, _ in live[:first_data + 1])  # market time at the first live book or print
    gap = re.fullmatch(r"BTC/USDT: ([0-9.]+) s without reliable data \(the session was down; resumed on live data\)",
                       detail)
    assert gap is not None and gap_ts == last_ts, detail
    assert float(gap.group(1)) == pytest.approx((gap_end - last_ts) / 1e9, abs=0.006) and float(gap.group(1)) > 2
    assert query(db, f"SELECT COUNT(*) FROM market_data WHERE seq > {seq_before} AND kind = 'trade'")[0][0] >= 5
    assert any(line.startswith("feed gap on BTC/USDT: ") for _, level, line in b.engine.events if level == "WARN")

    # the pause, tripped once (the replay did not trip it again), ran out during the downtime: it ends at the first
    # live market time, an event or a heartbeat, whichever came first
    assert paused_ts + PAUSE_S * 1e9 < gap_end and "until" in paused_line
    assert query(db, "SELECT COUNT(*) FROM state_events WHERE kind = 'PAUSED'") == [(1,)]
    (active_ts, active_line), = query(db, "SELECT market_ts, detail FROM state_events WHERE scope = 'portfolio' "
                                          "AND kind = 'ACTIVE'")
    assert active_ts == live[0][0] > last_ts and "PAUSED -> ACTIVE" in active_line, (live[:2], active_line)
    kinds = [k for (k,) in query(db, "SELECT kind FROM state_events WHERE scope = 'session' ORDER BY id")]
    assert kinds == ["STARTED", "RESUMED", "STOPPED"]
    assert fake.private_calls() == []

    report = validate(db)  # in process: the command's own process would not know this test's strategy
    assert report.market_events == len(seqs) and report.score.paper_decisions == 2 and report.lines()
    code, out, err = await paperdesk("audit", "verify", "--db", str(db))
    assert code == 0 and "intact" in out, out + err


async def test_a_stop_during_the_replay_writes_nothing_and_the_next_open_resumes(fake, tmp_path, monkeypatch):
    db, config = tmp_path / "desk.sqlite", resume_config(fake.http_url)
    tape = asyncio.create_task(market(fake, 15.0))
    try:
        await crashed_session(fake, db, config)
        before = db.read_bytes()
        b = PaperSession(config, db_path=db)
        import engine.session as session_module

        replay = session_module.recover

        def stopped_replay(*args: Any) -> Any:
            b.stop("SIGTERM")  # as the signal handler would, once the replay is under way
            return replay(*args)

        monkeypatch.setattr(session_module, "recover", stopped_replay)
        with pytest.raises(StoppedBeforeStart, match="stopped while replaying event 1"):
            await b.open()
        monkeypatch.undo()
        assert db.read_bytes() == before and b.writer is None
        again = PaperSession(config, db_path=db)  # the lock was released and the live feed closed
        await again.run(duration=0.5)
        assert again.recovered is not None and again.recovered.restarts == 1
    finally:
        tape.cancel()


async def test_an_exchange_that_changed_its_rules_is_named_when_a_resume_is_refused(fake, tmp_path):
    """The config is the user's, unchanged; the exchange's filters filled into it are not (Binance changes them)."""
    import dataclasses

    from engine.store.database import StoreError

    db = tmp_path / "desk.sqlite"
    config = parse_config(ccxt_config(fake.http_url))
    a = PaperSession(config, db_path=db)
    await a.open()
    await a.close()
    spec = fake.exchange.specs["BTCUSDT"]
    fake.exchange.specs["BTCUSDT"] = dataclasses.replace(spec, min_notional="10")
    with pytest.raises(StoreError) as refused:
        await PaperSession(config, db_path=db).open()
    message = str(refused.value)
    assert "binance now lists other rules for its instruments than when it ran" in message
    assert "instruments[0].min_notional: 5.0 -> 10.0" in message and "--new-session" in message
    assert "run with the config it started with" not in message
