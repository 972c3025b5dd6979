"""A resume that recovery refuses changes nothing in the database: the session is not marked RUNNING, its
restarts are not counted and its end is not cleared; only a resume that recovered exactly is written down."""

import sqlite3
from pathlib import Path

import pytest

from engine.session import PaperSession
from engine.store.database import StoreError, WriterLock
from engine.store.recovery import RecoveryError
from tests.conftest import BASE_CONFIG, make_config
from tests.store.helpers import LADDER, crash, query, stepped_session

SESSION_ROW = "SELECT status, restarts, pid, ended_wall_ns, stop_reason FROM sessions ORDER BY id"


def ladder_config():
    return make_config(venue={"latency_ms": 2000.0}, strategies=[LADDER, *BASE_CONFIG["strategies"][1:]])


def sql(db: Path, script: str) -> None:
    """Run script on db, then fold the WAL into the file so the bytes on disk are the whole database."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.executescript(script)
        assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy
    finally:
        conn.close()


def file_bytes(db: Path) -> dict[str, bytes]:
    """The database and its WAL, as they are on disk (the -shm index and the lock file are not data)."""
    return {p.name: p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists()}


async def a_session_with_fills(db: Path, stopped: bool) -> PaperSession:
    session = await stepped_session(db, ladder_config(), steps=300, close=stopped)
    assert session.engine.fills
    if not stopped:
        assert await session.writer.flush()
        await crash(session)
    sql(db, "")
    return session


EDIT_A_FILL = ("UPDATE fills SET price = price * 1.01 WHERE fill_id = "
               "(SELECT fill_id FROM fills ORDER BY fill_id LIMIT 1)")
DROP_MARKET_DATA = "DELETE FROM market_data WHERE seq = (SELECT MAX(seq) / 2 FROM market_data)"


@pytest.mark.parametrize("stopped", [True, False], ids=["stopped", "crashed"])
@pytest.mark.parametrize(("tamper", "refusal"), [(EDIT_A_FILL, r"stored fill .* does not come out of the replay"),
                                                 (DROP_MARKET_DATA, r"stored market data .* does not match")],
                         ids=["edited-fill", "missing-market-data"])
async def test_a_refused_resume_leaves_every_byte_as_it_was(tmp_path, stopped, tamper, refusal):
    db = tmp_path / "desk.sqlite"
    await a_session_with_fills(db, stopped)
    sql(db, tamper)
    before = file_bytes(db)  # before any reader: a read-only connection may leave an empty -wal file behind
    assert list(before) == ["desk.sqlite"]  # the WAL is folded in: the file holds everything

    refused = PaperSession(ladder_config(), db_path=db)
    with pytest.raises(RecoveryError, match=refusal):
        await refused.open()
    assert refused.writer is None and refused.inbox is None

    assert file_bytes(db) == before
    row = query(db, SESSION_ROW)  # still STOPPED (or RUNNING, as the crash left it), restarts not counted
    assert len(row) == 1 and row[0][:2] == ("STOPPED" if stopped else "RUNNING", 0)
    _, _, _, ended, reason = row[0]
    assert (ended is not None, reason) == ((True, "duration") if stopped else (False, None))  # its end kept
    lock = WriterLock(db)
    lock.acquire()  # the refusal let go of the writer lock
    lock.release()


async def test_a_refused_resume_is_not_counted_once_the_database_is_put_right(tmp_path):
    db = tmp_path / "desk.sqlite"
    await a_session_with_fills(db, stopped=True)
    price, = query(db, "SELECT price FROM fills ORDER BY fill_id LIMIT 1")[0]
    sql(db, EDIT_A_FILL)
    for _ in range(2):  # refused twice: neither attempt counts as a restart
        with pytest.raises(StoreError):
            await PaperSession(ladder_config(), db_path=db).open()
    assert query(db, "SELECT status, restarts FROM sessions") == [("STOPPED", 0)]

    sql(db, f"UPDATE fills SET price = {price!r} WHERE fill_id = (SELECT fill_id FROM fills ORDER BY fill_id LIMIT 1)")
    resumed = PaperSession(ladder_config(), db_path=db)
    await resumed.open()
    assert resumed.recovered is not None and resumed.recovered.restarts == 1
    assert resumed.recovered.summary().startswith("restart 1: ")
    assert resumed.snapshot().restarts == 1
    status, restarts, pid, ended, reason = query(db, SESSION_ROW)[0]
    assert (status, restarts, ended, reason) == ("RUNNING", 1, None, None) and pid is not None
    await resumed.close()
    assert query(db, "SELECT status, restarts FROM sessions") == [("STOPPED", 1)]
    kinds = [(k, d) for k, d in query(db, "SELECT kind, detail FROM state_events WHERE scope = 'session' ORDER BY id")]
    assert [k for k, _ in kinds] == ["STARTED", "STOPPED", "RESUMED", "STOPPED"]
    assert kinds[2][1].startswith("restart 1: ")


async def test_a_crashed_session_still_resumes_and_counts_its_restart(tmp_path):
    db = tmp_path / "desk.sqlite"
    await a_session_with_fills(db, stopped=False)
    fills = query(db, "SELECT COUNT(*) FROM fills")[0][0]
    resumed = PaperSession(ladder_config(), db_path=db)
    await resumed.open()
    assert resumed.recovered.restarts == 1 and resumed.recovered.fills == fills
    assert query(db, "SELECT status, restarts FROM sessions") == [("RUNNING", 1)]
    await resumed.close()
    again = PaperSession(ladder_config(), db_path=db)
    await again.open()
    assert again.recovered.restarts == 2
    assert query(db, "SELECT status, restarts FROM sessions") == [("RUNNING", 2)]
    await again.close()


async def test_a_refused_resume_that_needed_a_schema_upgrade_leaves_the_session_row_alone(tmp_path):
    db = tmp_path / "desk.sqlite"
    await a_session_with_fills(db, stopped=True)
    row = query(db, SESSION_ROW)
    # back to what schema 1 wrote (as tests/store/test_schema_upgrade.py does), with an edited fill
    sql(db, "DROP TABLE audit_legacy; DROP TABLE behaviour_series; ALTER TABLE strategies DROP COLUMN fingerprint; "
            "DROP TABLE venue_events; DROP TABLE missed_market_data; DROP TABLE behaviour_scores; "
            "DROP TABLE risk_state; DROP INDEX commands_by_session; ALTER TABLE decisions DROP COLUMN denied_limit; "
            "ALTER TABLE decisions DROP COLUMN denied_value; ALTER TABLE commands DROP COLUMN market_seq; "
            "ALTER TABLE commands DROP COLUMN market_ts; ALTER TABLE commands DROP COLUMN ok; "
            f"PRAGMA user_version = 1; {EDIT_A_FILL}")
    with pytest.raises(RecoveryError, match="stored fill"):
        await PaperSession(ladder_config(), db_path=db).open()
    # the schema upgrade runs before recovery can read the session (migrate() commits it), so the file does
    # change; the session itself is not marked running, nor its restart counted
    assert query(db, SESSION_ROW) == row
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
