"""SIGINT, SIGTERM and SIGHUP at any moment of `paperdesk run` end it cleanly.

A stop requested before the session's first write ends PaperSession.open() with the database as it was, even in the
middle of a resume's replay (which runs in a worker thread).
"""

import asyncio
import hashlib
import shutil
from pathlib import Path

import pytest

from engine.session import PaperSession, StoppedBeforeStart
from tests.conftest import make_config
from tests.store.helpers import query, stepped_session


@pytest.fixture(scope="module")
def long_session(tmp_path_factory) -> Path:
    """A stopped session whose resume replays ~40,000 market events (about half a second or more)."""
    db = tmp_path_factory.mktemp("long") / "long.sqlite"
    asyncio.run(stepped_session(db, make_config(), steps=3000))
    return db


def digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


async def test_a_stop_during_the_replay_ends_it_between_two_events_and_writes_nothing(tmp_path, long_session):
    db = tmp_path / "desk.sqlite"
    shutil.copy(long_session, db)
    before = digest(db)
    session = PaperSession(make_config(), db_path=db)
    opening = asyncio.create_task(session.open())
    while session.journal is None or session.journal.market_seq < 1000:  # the replay is under way
        assert not opening.done()
        await asyncio.sleep(0.001)
    session.stop("SIGTERM")
    with pytest.raises(StoppedBeforeStart, match="stopped while replaying event"):
        await asyncio.wait_for(opening, 5)
    total = query(db, "SELECT COUNT(*) FROM market_data")[0][0]
    assert session.journal.market_seq < total  # cut short, not run to the end
    assert digest(db) == before
    resumed = PaperSession(make_config(), db_path=db)  # the lock was released and the session is as it was
    await resumed.run(duration=0.2)
    assert resumed.recovered is not None and resumed.recovered.restarts == 1  # the stopped attempt did not count
