"""Recovery in process: a session dropped mid-flight comes back exactly where its saved state was."""

import json

import pytest

from engine.session import PaperSession
from engine.store.database import StoreError
from engine.store.recovery import RecoveryError
from tests.conftest import BASE_CONFIG, make_config
from tests.store.helpers import LADDER, crash, engine_state, query

STEP_NS = 3_000_000_000  # three market seconds per step, as the default config's 25 ms x speed 120


def ladder_config(**venue):
    return make_config(venue={"latency_ms": 2000.0, **venue}, strategies=[LADDER, *BASE_CONFIG["strategies"][1:]])


async def ladder_session(tmp_path):
    """An opened session with resting limit orders among its strategies: (config, db, session, start_ns)."""
    config = ladder_config()
    db = tmp_path / "desk.sqlite"
    session = PaperSession(config, db_path=db)
    await session.open()
    return config, db, session, session.clock.now_ns()


async def test_a_crashed_session_resumes_exactly_as_if_never_interrupted(tmp_path):
    config, db, a, start = await ladder_session(tmp_path)
    times = [start + (i + 1) * STEP_NS for i in range(3000)]
    cut = 0
    # cut where orders rest on the venue, another is on its way there and positions are open
    while cut < 400 or not (a.engine.broker.simulator.in_flight and a.engine.broker.simulator._working.get("BTC/USDT")
                            and any(p.qty for p in a.engine.account.positions.values())):
        a.step(times[cut])
        cut += 1
    assert await a.writer.flush()
    saved = engine_state(a)
    saved_events = a.journal.market_seq
    lost = cut + 50
    for ts in times[cut:lost]:  # traded, but never saved: the crash loses these steps
        a.step(ts)
    await crash(a)
    durable = query(db, "SELECT fill_id, qty, price, ts FROM fills ORDER BY fill_id")
    assert durable and sorted(durable) == sorted(saved["fills"])

    b = PaperSession(config, db_path=db)
    await b.open()
    assert b.recovered.events == saved_events and b.recovered.last_ts == times[cut - 1]
    assert b.recovered.restarts == 1
    assert engine_state(b) == saved  # cash, positions, orders, venue queue places, strategies, market generator
    for ts in times[cut:]:
        b.step(ts)
    for ts in times[lost:]:
        a.step(ts)
    assert engine_state(b) == engine_state(a)
    assert b.engine.strategies["ladder_btc"].bars_seen == a.engine.strategies["ladder_btc"].bars_seen

    assert await b.writer.flush()
    stored = query(db, "SELECT fill_id, qty, price, ts FROM fills ORDER BY fill_id")
    assert stored == sorted((f.fill_id, f.qty, f.price, f.ts) for f in b.engine.fills)
    assert set(durable) <= set(stored)
    decisions = query(db, "SELECT seq FROM decisions ORDER BY seq")
    assert [s for (s,) in decisions] == list(range(1, len(b.engine.decisions) + 1))
    orders = dict(query(db, "SELECT client_id, status FROM orders"))
    assert orders == {o.client_id: o.status.value for o in b.engine.orders.values()}
    # every order's transitions are numbered 1..n without gaps, however many restarts wrote them
    for client_id, ns in _order_event_numbers(db).items():
        assert ns == list(range(1, len(ns) + 1)), client_id
    kinds = [k for (k,) in query(db, "SELECT kind FROM state_events WHERE scope = 'session' ORDER BY id")]
    assert kinds == ["STARTED", "RESUMED"]
    # trading-state changes (breakers trip in this stormy market): each once, none lost or doubled by the replay
    changes = query(db, "SELECT COUNT(*) FROM state_events WHERE scope != 'session'")[0][0]
    assert changes == b.engine.guard.changes == b.journal.state_seq
    await b.writer.close()


def _order_event_numbers(db):
    out = {}
    for client_id, n in query(db, "SELECT client_id, n FROM order_events ORDER BY client_id, n"):
        out.setdefault(client_id, []).append(n)
    return out


async def test_resuming_with_another_config_is_refused_and_new_session_starts_fresh(tmp_path):
    db = tmp_path / "desk.sqlite"
    a = PaperSession(make_config(), db_path=db)
    await a.run(duration=0.5)
    before = db.read_bytes()
    changed = make_config(venue={"seed": 12})
    with pytest.raises(StoreError, match=r"session 1 is unfinished .*venue\.seed: 11 -> 12.*--new-session"):
        await PaperSession(changed, db_path=db).open()
    assert db.read_bytes() == before
    c = PaperSession(changed, db_path=db, new_session=True)
    await c.run(duration=0.3)
    assert query(db, "SELECT id, status FROM sessions ORDER BY id") == [(1, "ENDED"), (2, "STOPPED")]
    # the ended session is never resumed again, even with its own config
    d = PaperSession(make_config(), db_path=db)
    with pytest.raises(StoreError, match="session 2 is unfinished"):
        await d.open()


async def test_a_stored_fill_the_replay_does_not_reproduce_stops_recovery(tmp_path):
    config, db, a, start = await ladder_session(tmp_path)
    for i in range(300):
        a.step(start + (i + 1) * STEP_NS)
    assert await a.writer.flush() and a.engine.fills
    await crash(a)
    import sqlite3
    conn = sqlite3.connect(db)
    fill_id = conn.execute("SELECT fill_id FROM fills ORDER BY fill_id LIMIT 1").fetchone()[0]
    conn.execute("UPDATE fills SET price = price + 1 WHERE fill_id = ?", (fill_id,))
    conn.commit()
    conn.close()
    rows_before = query(db, "SELECT COUNT(*) FROM market_data")
    b = PaperSession(config, db_path=db)
    with pytest.raises(RecoveryError, match=f"stored fill {fill_id} .* refusing to trade"):
        await b.open()
    assert query(db, "SELECT COUNT(*) FROM market_data") == rows_before
    assert b.writer is None


async def test_venue_state_rows_follow_the_market(tmp_path):
    db = tmp_path / "desk.sqlite"
    session = PaperSession(make_config(), db_path=db)
    await session.run(duration=0.5)
    (seq, state), = query(db, "SELECT market_seq, state FROM venue_state")
    assert seq == query(db, "SELECT MAX(seq) FROM market_data")[0][0]
    assert json.loads(state)["steps"] == session.feed.market.steps


async def test_a_resumed_session_has_its_equity_curve_back(tmp_path):
    db = tmp_path / "desk.sqlite"
    await PaperSession(make_config(), db_path=db).run(duration=0.8)
    stored = query(db, "SELECT ts, equity FROM equity ORDER BY ts")
    assert len(stored) >= 3
    resumed = PaperSession(make_config(), db_path=db)
    await resumed.open()
    assert resumed.engine.equity_curve == stored
    assert resumed.snapshot().equity_series == tuple(e for _, e in stored)
    await resumed.writer.close()
