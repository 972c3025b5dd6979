"""The single writer: what 'committed' means, and back-pressure that keeps the backlog bounded."""

import asyncio
import time

import pytest

from engine.session import PaperSession
from engine.store.database import StoreError, writer_running
from tests.conftest import make_config
from tests.store.helpers import query

STEP_NS = 3_000_000_000


async def test_rows_are_readable_by_another_connection_once_flush_returns(tmp_path):
    db = tmp_path / "desk.sqlite"
    session = PaperSession(make_config(), db_path=db)
    await session.open()
    start = session.clock.now_ns()
    for i in range(400):
        session.step(start + (i + 1) * STEP_NS)
    assert session.engine.fills
    assert await session.writer.flush()
    assert query(db, "SELECT COUNT(*) FROM fills")[0][0] == len(session.engine.fills)
    assert query(db, "SELECT COUNT(*) FROM market_data")[0][0] == session.journal.market_seq
    await session.writer.close()


async def test_a_fill_is_durable_within_the_flush_interval_without_anyone_asking(tmp_path):
    """The documented promise: durable within flush_ms plus one commit (checked loosely: 20 flush intervals)."""
    db = tmp_path / "desk.sqlite"
    session = PaperSession(make_config(store={"flush_ms": 50.0}), db_path=db)
    trading = asyncio.create_task(session.run(duration=30))
    try:
        while not session.engine.fills:
            await asyncio.sleep(0.005)
        first = session.engine.fills[0].fill_id
        seen_at = time.monotonic()
        while not query(db, "SELECT 1 FROM fills WHERE fill_id = ?", (first,)):
            assert time.monotonic() - seen_at < 1.0, "a fill was not committed within 20 flush intervals"
            await asyncio.sleep(0.005)
    finally:
        session.stop()
        await trading


async def test_back_pressure_bounds_the_backlog_and_is_counted(tmp_path):
    db = tmp_path / "desk.sqlite"
    # the writer's own timer almost never fires: only back-pressure keeps the backlog down
    config = make_config(store={"flush_ms": 5000.0, "max_backlog_rows": 1000})
    session = PaperSession(config, db_path=db)
    backlogs = []
    original = session.apply_live

    async def apply_live(batch):
        await original(batch)
        backlogs.append(session.journal.count)

    session.apply_live = apply_live
    await session.run(duration=2.0)
    rows_per_step = max(b - a for a, b in zip(backlogs, backlogs[1:], strict=False))
    assert session.writer.waits > 0
    assert max(backlogs) <= 1000 + rows_per_step
    (waits, saved), = query(db, "SELECT writer_waits, rows_committed FROM sessions")
    assert waits == session.writer.waits and saved == session.writer.rows_committed
    assert query(db, "SELECT COUNT(*) FROM market_data")[0][0] == session.journal.market_seq


async def test_a_writer_that_dies_stops_trading_instead_of_silently_saving_nothing(tmp_path):
    db = tmp_path / "desk.sqlite"
    session = PaperSession(make_config(), db_path=db)
    await session.open()
    # a bug in the writer's own code (here: an audit payload JSON cannot encode) kills its task
    session.journal.audit.append((0, "test", "test:unencodable", {"value": object()}))
    session.journal.count += 1
    with pytest.raises(StoreError, match="the database writer stopped unexpectedly .*TypeError"):
        await session.run(duration=20)
    assert session.journal.count > 0  # what it could not write is still queued, not dropped
    assert not writer_running(db)  # the lock is released: the next run can resume
