"""A session on a loop of its own (engine/session_thread.py): it trades while the loop watching it is blocked, its
commands run between market events and show at once, and a session that cannot open leaves no thread behind."""

import asyncio
import sqlite3
import sys
import threading
import time
from functools import partial

import pytest

from engine.session import PaperSession
from engine.session_thread import SWITCH_SECONDS, SessionNotAnswering, SessionThread
from engine.store.database import StoreError
from tests.conftest import make_config, until


def session_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "paperdesk-session"]


async def test_the_session_trades_while_the_loop_watching_it_is_blocked(tmp_path):
    session = PaperSession(make_config(), db_path=tmp_path / "desk.sqlite")
    runner = SessionThread(session, publish_seconds=0.05)
    switch = sys.getswitchinterval()
    await runner.open()
    assert runner.loop is not asyncio.get_running_loop() and len(session_threads()) == 1
    # it waits less for the interpreter meanwhile (Python keeps the interval in whole microseconds)
    assert sys.getswitchinterval() == pytest.approx(min(switch, SWITCH_SECONDS), abs=1e-6)
    trading = asyncio.ensure_future(runner.run())
    await until(lambda: len(session.engine.decisions) > 0, 20.0)
    decisions, published = len(session.engine.decisions), runner.snapshot().ts
    time.sleep(1.0)  # this loop painting a long frame: the session's loop goes on without it
    assert len(session.engine.decisions) > decisions
    assert runner.snapshot().ts > published  # and publishes what it did meanwhile
    runner.stop("the test is over")
    final = await trading
    assert final.decisions == len(session.engine.decisions) and runner.snapshot() is final
    assert not session_threads() and sys.getswitchinterval() == switch  # the process as it was
    with sqlite3.connect(tmp_path / "desk.sqlite") as conn:
        assert conn.execute("SELECT status, stop_reason FROM sessions").fetchall() == [("STOPPED", "the test is over")]


async def test_a_command_runs_on_the_sessions_loop_and_the_next_snapshot_shows_it(tmp_path):
    session = PaperSession(make_config(), db_path=tmp_path / "desk.sqlite")
    runner = SessionThread(session, publish_seconds=60.0)  # no publishing in between: only call() can refresh it
    await runner.open()
    trading = asyncio.ensure_future(runner.run())
    try:
        ran_on: list[int] = []

        def halt() -> tuple[bool, str]:
            ran_on.append(threading.get_ident())
            return session.operator_command("halt", {}, "operator pressed h", "console")

        ok, what = runner.call(halt)
        assert ok, what
        assert ran_on != [threading.get_ident()] and ran_on[0] == runner.loop._thread_id  # type: ignore[attr-defined]
        assert runner.snapshot().trading_state == "HALTED"
    finally:
        runner.stop("the test is over")
        await trading
    with pytest.raises(SessionNotAnswering, match="the session has ended; nothing was applied"):
        runner.call(halt)  # a key pressed as it ended
    with sqlite3.connect(tmp_path / "desk.sqlite") as conn:
        assert conn.execute("SELECT command, source FROM commands").fetchall() == [("halt", "console")]


async def test_a_loop_that_does_not_answer_is_reported_instead_of_waited_for(tmp_path):
    session = PaperSession(make_config())
    runner = SessionThread(session)
    await runner.open()
    trading = asyncio.ensure_future(runner.run())
    gate = threading.Event()

    async def stuck() -> None:
        gate.wait(10.0)  # a loop held by something that does not yield

    held = runner.submit(stuck())
    try:
        with pytest.raises(SessionNotAnswering, match="did not answer within 0.2 s; it may still apply it"):
            runner.call(partial(session.operator_command, "halt", {}, "late", "console"), timeout=0.2)
    finally:
        gate.set()
        await held
    await until(lambda: session.engine.guard.states.state("portfolio").value == "HALTED", 20.0)  # it did, once let in
    runner.stop("the test is over")
    await trading


async def test_a_session_that_cannot_open_raises_and_leaves_no_thread(tmp_path):
    db = tmp_path / "desk.sqlite"
    db.write_bytes(b"not a database at all, just some bytes" * 100)
    runner = SessionThread(PaperSession(make_config(), db_path=db))
    with pytest.raises(StoreError, match="not a paperdesk database"):
        await runner.open()
    assert not session_threads()
    assert db.read_bytes() == b"not a database at all, just some bytes" * 100


async def test_a_snapshot_that_fails_is_raised_to_whoever_reads_it_not_shown_stale(monkeypatch):
    session = PaperSession(make_config())
    runner = SessionThread(session, publish_seconds=0.02)
    await runner.open()
    trading = asyncio.ensure_future(runner.run())
    try:
        runner.snapshot()
        monkeypatch.setattr(session, "snapshot", lambda: 1 / 0)

        def failed() -> bool:
            try:
                runner.snapshot()
            except RuntimeError:
                return True
            return False

        await until(failed, 20.0)
        with pytest.raises(RuntimeError, match="the session's snapshot failed: ZeroDivisionError"):
            runner.snapshot()
    finally:
        runner.stop("the test is over")
        with pytest.raises(ZeroDivisionError):  # run()'s own last picture fails the same way
            await trading
