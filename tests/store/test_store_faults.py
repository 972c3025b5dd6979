"""Issue 12: the store failing under a running session. A deleted or replaced -wal/database file is noticed
and stops trading; a failing commit stops new positions at once (REDUCING from the store) and lifts when
commits succeed again; the headless summary says what was saved and what was not."""

import asyncio
import io
import os
import re
import shutil
import sqlite3

import pytest

import console.headless as headless
from engine.breakers.guard import STORE
from engine.breakers.trading_state import PORTFOLIO, TradingState
from engine.session import PaperSession
from engine.store.database import StoreError, writer_running
from tests.conftest import make_config
from tests.store.helpers import STEP_NS, query


async def _until(predicate, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def _saved_fills(db) -> int:
    return query(db, "SELECT COUNT(*) FROM fills")[0][0]


async def _trading_with_saved_fills(db, config):
    """A session on db, running, once some of its fills are in the database: (session, its run task)."""
    session = PaperSession(config, db_path=db)
    trading = asyncio.create_task(session.run(duration=30))
    await _until(lambda: session.writer is not None and session.engine.fills and _saved_fills(db) > 0)
    return session, trading


def _failing_commits(session: PaperSession, failing) -> None:
    """The writer's commits raise what SQLite raises on a full disk while failing() is true."""
    writer = session.writer
    original = writer._commit

    async def commit(batch, audit, count):
        if failing():
            raise sqlite3.OperationalError("database or disk is full")
        await original(batch, audit, count)

    writer._commit = commit


async def test_deleting_the_wal_under_a_running_session_stops_trading_and_checkpoints_what_it_held(tmp_path):
    db = tmp_path / "desk.sqlite"
    config = make_config(store={"flush_ms": 20.0})
    session, trading = await _trading_with_saved_fills(db, config)
    os.unlink(f"{db}-wal")
    with pytest.raises(StoreError, match=r"the write-ahead log .*desk\.sqlite-wal was deleted while the session was "
                                         r"writing; stopped trading\. A checkpoint copied the \d+ rows committed "
                                         r"since .* UTC .* into the database file"):
        await asyncio.wait_for(trading, 15)
    writer = session.writer
    assert not writer.lost and writer.rows_committed > 0
    # every row the writer committed is in the database file itself, not only in the deleted log
    saved = len(session.engine.fills) - writer.unsaved().get("fill", 0)
    assert saved > 0 and _saved_fills(db) == saved
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    assert not writer_running(db)
    resumed = PaperSession(config, db_path=db)
    await resumed.run(duration=0.3)
    assert resumed.recovered is not None and len(resumed.engine.fills) >= saved


async def test_a_deleted_wal_that_cannot_be_checkpointed_is_not_claimed_as_saved(tmp_path):
    db = tmp_path / "desk.sqlite"
    session, trading = await _trading_with_saved_fills(db, make_config(store={"flush_ms": 20.0}))

    async def cannot() -> bool:
        return False

    session.writer._rescue = cannot  # say the checkpoint failed (a full disk, the database file gone too)
    claimed = session.writer.rows_committed
    os.unlink(f"{db}-wal")
    with pytest.raises(StoreError, match=r"the write-ahead log .*desk\.sqlite-wal was deleted while the session was "
                                         r"writing; stopped trading\. The \d+ rows committed since .* UTC .* fills.*\) "
                                         r"may not be durable"):
        await asyncio.wait_for(trading, 15)
    writer = session.writer
    assert writer.lost and sum(writer.lost.values()) >= claimed
    assert writer.rows_committed == 0  # nothing this process committed is claimed as saved any more
    snap = session.snapshot()
    assert snap.store_committed == 0 and "write-ahead log" in snap.store_error
    assert not writer_running(db)


async def test_replacing_the_database_file_under_a_running_session_stops_trading(tmp_path):
    db = tmp_path / "desk.sqlite"
    session = PaperSession(make_config(store={"flush_ms": 20.0}), db_path=db)
    trading = asyncio.create_task(session.run(duration=30))
    await _until(lambda: session.writer is not None and session.writer.rows_committed > 0)
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(db, copy)
    os.replace(copy, db)  # what a restore from backup (or a careless cp) does under a running writer
    with pytest.raises(StoreError, match=r"the database file .*desk\.sqlite was replaced by another file"):
        await asyncio.wait_for(trading, 15)
    assert session.writer.rows_committed == 0


async def test_a_failing_commit_stops_new_positions_at_once_and_lifts_when_commits_succeed(tmp_path):
    db = tmp_path / "desk.sqlite"
    session = PaperSession(make_config(store={"flush_ms": 20.0, "write_retry_seconds": 30.0}), db_path=db)
    failing = False
    trading = asyncio.create_task(session.run(duration=30))
    await _until(lambda: session.writer is not None)
    _failing_commits(session, lambda: failing)
    guard = session.engine.guard
    try:
        await _until(lambda: session.engine.fills and session.writer.rows_committed > 0)
        failing = True
        # long before write_retry_seconds: the first failed commit restricts the portfolio
        await _until(lambda: STORE in guard.states.sources(PORTFOLIO), timeout=5)
        restriction = guard.states.sources(PORTFOLIO)[STORE]
        assert restriction.state is TradingState.REDUCING and "database or disk is full" in restriction.cause
        assert session.snapshot().trading_state == "REDUCING"  # what status and the console show
        for name in session.engine.strategies:
            assert guard.effective(name).state is TradingState.REDUCING
        assert not trading.done()  # still retrying, not stopped
        failing = False
        await _until(lambda: STORE not in guard.states.sources(PORTFOLIO), timeout=5)
        assert session.snapshot().trading_state == "ACTIVE"
    finally:
        failing = False
        session.stop()
        await asyncio.wait_for(trading, 15)
    # both changes reached the journal once commits went through again
    kinds = [k for (k,) in query(db, "SELECT kind FROM state_events WHERE detail LIKE '%(store:%' ORDER BY id")]
    assert kinds == ["REDUCING", "ACTIVE"]
    # the live-only restriction does not shift the numbered changes a resume recomputes: it resumes exactly
    resumed = PaperSession(make_config(store={"flush_ms": 20.0}), db_path=db)
    await resumed.run(duration=0.5)
    assert resumed.recovered is not None


async def test_the_headless_summary_says_what_was_saved_and_what_was_not(tmp_path, monkeypatch):
    db = tmp_path / "desk.sqlite"
    config = make_config(store={"flush_ms": 20.0, "write_retry_seconds": 0.5})

    class DiskFullOnceTrading(PaperSession):
        async def open(self) -> None:
            await super().open()
            if self.writer is not None and not hasattr(self.writer, "_patched"):
                self.writer._patched = True
                _failing_commits(self, lambda: bool(self.engine.fills))  # the disk fills up with the first fill

    monkeypatch.setattr(headless, "PaperSession", DiskFullOnceTrading)
    out = io.StringIO()
    code = await asyncio.wait_for(headless.run_headless(config, duration=30, db=db, out=out), 20)
    assert code == 1
    lines = out.getvalue().strip().splitlines()
    summary = lines[-1]
    assert "summary stopped_by=store-error" in summary
    saved, total = map(int, re.search(r"saved fills=(\d+) of (\d+);", summary).groups())
    assert total >= 1 and saved == _saved_fills(db) == 0
    assert re.search(r"NOT SAVED: \d+ rows \(.*\b\d+ fills\b", summary), summary
    assert "in memory only: " in summary


async def test_a_session_that_was_restricted_by_the_store_resumes_exactly(tmp_path):
    db = tmp_path / "desk.sqlite"
    config = make_config()
    session = PaperSession(config, db_path=db)
    await session.open()
    start = session.clock.now_ns()
    engine, journal = session.engine, session.journal
    for i in range(1, 601):
        ts = start + i * STEP_NS
        session.step(ts)
        if i in (200, 400):  # what run() does at a failed commit and at the next good one
            cause = "cannot write to the database (database or disk is full)" if i == 200 else None
            engine.guard.store_unwritable(cause, ts)
            engine._settle()
            journal.command_applied(None, "store", {"cause": cause}, cause or "writes again", STORE, True, "", ts)
    await session.close()
    resumed = PaperSession(config, db_path=db)
    try:
        await resumed.open()
    finally:
        await resumed.close()
    assert resumed.recovered is not None


async def test_a_stop_whose_last_rows_cannot_be_saved_exits_1(tmp_path, monkeypatch):
    """Stopped by a signal (not by a store error) while the disk refuses the closing commits: the summary says what
    was not saved, and the exit code says the run was not clean."""
    db = tmp_path / "desk.sqlite"
    config = make_config(store={"flush_ms": 20.0, "write_retry_seconds": 0.2})

    class DiskFullAtTheEnd(PaperSession):
        async def open(self) -> None:
            await super().open()
            _failing_commits(self, lambda: self.stopping)

        async def run(self, duration=None, on_status=None):
            asyncio.get_running_loop().call_later(1.0, self.stop, "SIGTERM")
            return await super().run(duration, on_status)

    monkeypatch.setattr(headless, "PaperSession", DiskFullAtTheEnd)
    out = io.StringIO()
    code = await asyncio.wait_for(headless.run_headless(config, duration=30, db=db, out=out), 20)
    summary = out.getvalue().strip().splitlines()[-1]
    assert "NOT SAVED" in summary, out.getvalue()
    assert code == 1
