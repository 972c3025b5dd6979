"""Operator commands are part of what a restart replays: the rebuilt engine is in the state the commands left."""

import sqlite3
import threading

from engine.breakers.trading_state import TradingState
from engine.session import PaperSession
from engine.store.commands import CommandInbox, queue_command
from tests.store.helpers import crash, engine_state, query
from tests.store.test_recovery import STEP_NS, ladder_config


async def test_a_restart_replays_commands_after_the_market_event_they_followed(tmp_path):
    config = ladder_config()
    db = tmp_path / "desk.sqlite"
    a = PaperSession(config, db_path=db)
    await a.open()
    start = a.clock.now_ns()
    times = [start + (i + 1) * STEP_NS for i in range(1500)]

    def command(kind: str, reason: str, **args) -> None:
        queue_command(db, kind, args, reason)
        a._commands.extend(a.inbox.fetch())
        a.apply_commands()

    i = 0
    while i < 300 or not any(p.qty for p in a.engine.account.positions.values()):
        a.step(times[i])
        i += 1
    command("halt", "lunch", strategy="ladder_btc")
    for ts in times[i:i + 100]:
        a.step(ts)
    command("emergency-stop", "drill")
    for ts in times[i + 100:i + 110]:
        a.step(ts)
    command("resume", "drill over")
    cut = i + 200
    for ts in times[i + 110:cut]:
        a.step(ts)
    assert await a.writer.flush()
    saved = engine_state(a)
    states = {s: a.engine.guard.states.state(s) for s in ("portfolio", "ladder_btc")}
    assert states == {"portfolio": TradingState.ACTIVE, "ladder_btc": TradingState.HALTED}
    flatten = [o.client_id for o in a.engine.orders.values() if o.origin == "flatten"]
    assert flatten, "the emergency stop closed positions"
    await crash(a)
    trading_refs = query(db, "SELECT ref FROM audit WHERE ref LIKE 'trading:%' ORDER BY seq")
    assert len(trading_refs) == 3  # halt, emergency stop, resume

    b = PaperSession(config, db_path=db)
    await b.open()
    assert engine_state(b) == saved
    assert {s: b.engine.guard.states.state(s) for s in states} == states
    assert await b.writer.flush()
    # the replay re-derived every state change and command, and appended none of them again
    assert query(db, "SELECT ref FROM audit WHERE ref LIKE 'trading:%' ORDER BY seq") == trading_refs
    assert len(query(db, "SELECT ref FROM audit WHERE kind = 'command'")) == 3
    assert query(db, "SELECT COUNT(*) FROM commands WHERE handled_wall_ns IS NOT NULL")[0][0] == 3
    await b.close()


async def test_commands_and_status_work_for_a_database_whose_name_has_uri_characters(tmp_path):
    from console.store_views import print_status

    db = tmp_path / "my desk #1 ?%.sqlite"
    session = PaperSession(ladder_config(), db_path=db)
    await session.open()
    session.step(session.clock.now_ns() + STEP_NS)
    queue_command(db, "halt", {}, "odd name")
    session._commands.extend(session.inbox.fetch())
    session.apply_commands()
    assert session.engine.guard.states.state("portfolio") is TradingState.HALTED
    await session.close()

    import io

    out = io.StringIO()
    assert print_status(db, None, False, out) == 0
    assert "trading: HALTED (operator: odd name)" in out.getvalue()


async def test_closing_the_inbox_waits_for_a_fetch_still_running_in_its_thread(tmp_path, monkeypatch):
    """A stop cancels the poller while its fetch still runs in a worker thread, and the poller then closes the
    inbox: closing the connection under the running query crashed the whole process (a segfault in make test)."""
    config = ladder_config()
    db = tmp_path / "desk.sqlite"
    session = PaperSession(config, db_path=db)
    await session.open()
    await session.close()
    for i in range(200):
        queue_command(db, "pause", {}, f"queued {i}")
    inbox = CommandInbox(db, session.session_id)
    inbox.close()  # nothing opened yet: nothing to wait for
    inside, release = threading.Event(), threading.Event()
    fetched: list = []
    # the fetch opens its connection lazily; hold it inside SQLite's stepping until close() has been called
    real_connect = sqlite3.connect

    def slow_connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)

        def step() -> int:
            inside.set()
            release.wait(5)
            return 0
        conn.set_progress_handler(step, 1)
        return conn

    monkeypatch.setattr(sqlite3, "connect", slow_connect)
    worker = threading.Thread(target=lambda: fetched.extend(inbox.fetch()))
    worker.start()
    assert inside.wait(5)
    closer = threading.Thread(target=inbox.close)
    closer.start()
    closer.join(0.2)
    waited = closer.is_alive()
    release.set()
    worker.join(5)
    closer.join(5)
    assert waited, "close() did not wait for the fetch running in another thread"
    assert len(fetched) == 200 and not closer.is_alive()
