"""The chain's legacy list (audit_legacy) is not itself chained: a session the chain saw being stored cannot be
made legacy by adding its id there, or a row inserted without an audit entry would pass `audit verify`."""

import asyncio
import shutil
import sqlite3

from console.cli import main
from tests.conftest import make_config
from tests.store.helpers import query, stepped_session


def test_a_session_added_to_audit_legacy_by_hand_still_has_every_row_checked(tmp_path, capsys):
    db = tmp_path / "desk.sqlite"
    asyncio.run(stepped_session(db, make_config(), steps=300))
    copy = tmp_path / "copy.sqlite"
    shutil.copy(db, copy)
    fill_id = query(db, "SELECT fill_id FROM fills ORDER BY rowid LIMIT 1")[0][0]
    with sqlite3.connect(copy) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(fills)")]
        row = list(conn.execute("SELECT * FROM fills WHERE fill_id = ?", (fill_id,)).fetchone())
        row[columns.index("fill_id")] = "FORGED"
        conn.execute(f"INSERT INTO fills VALUES ({','.join('?' * len(row))})", row)
        conn.execute("INSERT INTO audit_legacy VALUES (1)")
    conn.close()
    code = main(["audit", "verify", "--db", str(copy)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1 and out[0].startswith("audit chain BROKEN at fills row") and "FORGED" in out[0], out
