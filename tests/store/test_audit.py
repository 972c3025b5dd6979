"""The audit chain: intact after a session; an edit, a deletion or a reordering is found at its row."""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.session import PaperSession
from engine.store.audit import verify_chain
from tests.conftest import make_config
from tests.store.helpers import LADDER, query

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def audited_db(tmp_path_factory):
    """A database whose session filled orders, was denied/rejected some, and was stopped and resumed."""
    import asyncio

    db = tmp_path_factory.mktemp("audit") / "desk.sqlite"
    config = make_config(strategies=[LADDER, {"name": "tiny", "kind": "sma_crossover", "symbols": ["ETH/USDT"],
                                              "params": {"fast": 2, "slow": 3, "size": 0.001}}])

    async def two_runs():
        await PaperSession(config, db_path=db).run(duration=1.5)
        await PaperSession(config, db_path=db).run(duration=0.5)

    asyncio.run(two_runs())
    return db


def verify(db: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", "audit", "verify", "--db", str(db)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_a_sessions_audit_chain_is_intact_and_covers_fills_rejections_and_lifecycle(audited_db):
    kinds = {k for (k,) in query(audited_db, "SELECT DISTINCT kind FROM audit")}
    assert {"fill", "rejection", "state"} <= kinds
    fills = query(audited_db, "SELECT COUNT(*) FROM fills")[0][0]
    assert query(audited_db, "SELECT COUNT(*) FROM audit WHERE kind = 'fill'")[0][0] == fills > 0
    result = verify(audited_db)
    assert result.returncode == 0 and result.stdout.startswith("audit chain intact:"), result.stdout


def tampered(db: Path, tmp_path: Path, sql: str) -> Path:
    copy = tmp_path / "copy.sqlite"
    shutil.copy(db, copy)
    conn = sqlite3.connect(copy)
    conn.executescript(sql)
    conn.close()
    return copy


def test_an_edited_row_breaks_the_chain_at_that_row(audited_db, tmp_path):
    copy = tampered(audited_db, tmp_path, "UPDATE audit SET payload = replace(payload, '\"qty\":', '\"qty\":1') "
                                          "WHERE seq = (SELECT MIN(seq) FROM audit WHERE kind = 'fill')")
    seq, ref = query(copy, "SELECT MIN(seq), ref FROM audit WHERE kind = 'fill'")[0]
    result = verify(copy)
    assert result.returncode == 1
    assert result.stdout.strip() == f"audit chain BROKEN at row {seq} ({ref}): its contents do not match its hash: " \
                                    "the row was edited"


def test_a_deleted_row_breaks_the_chain_where_it_was(audited_db, tmp_path):
    copy = tampered(audited_db, tmp_path, "DELETE FROM audit WHERE seq = 5")
    result = verify(copy)
    assert result.returncode == 1 and "BROKEN at row 5" in result.stdout and "rows were deleted" in result.stdout


def test_a_rewritten_tail_still_breaks_at_the_first_changed_row(audited_db, tmp_path):
    # swap the contents of rows 3 and 4 (keeping their numbers): the chain breaks at 3
    copy = tampered(audited_db, tmp_path, """
        CREATE TEMP TABLE a AS SELECT * FROM audit WHERE seq IN (3, 4);
        DELETE FROM audit WHERE seq IN (3, 4);
        INSERT INTO audit SELECT 7 - seq, wall_ns, session_id, kind, ref, payload, prev_hash, hash FROM a;""")
    report = verify_chain(sqlite3.connect(copy))
    assert not report.intact and report.broken_at == 3 and "prev_hash" in report.problem
