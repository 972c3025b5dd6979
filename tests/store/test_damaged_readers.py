"""Issue 12, a damaged database met by the read commands: one message naming the file, never a traceback.

A real session is saved to a real file; copies of it are damaged as a disk or an editor would (a b-tree page
overwritten, a byte inside a row that is no longer UTF-8, a book that is no longer JSON, a side no order has)
and every read command runs on each copy through the command line's main().
"""

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from console.cli import main
from tests.conftest import make_config
from tests.store.helpers import query, stepped_session

READ_COMMANDS = [["status"], ["status", "--json"], ["sessions"], ["audit", "verify"], ["export", "--what", "fills"],
                 ["export", "--what", "market_data"], ["validate"], ["report"], ["evaluate", "--strategy", "sma_btc"]]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("saved") / "desk.sqlite"
    asyncio.run(stepped_session(db, make_config(), steps=1500))
    assert query(db, "SELECT COUNT(*) FROM fills")[0][0] > 0
    return db


def damaged_copy(saved: Path, folder: Path, old: bytes, new: bytes) -> Path:
    """A copy of saved with the first stored occurrence of old (found in the file's bytes) replaced by new."""
    assert len(old) == len(new)
    data = saved.read_bytes()
    at = data.find(old)
    assert at > 0, f"{old!r} is not in the file"
    copy = folder / "damaged.sqlite"
    copy.write_bytes(data[:at] + new + data[at + len(old):])
    return copy


def run(args: list[str], db: Path, capsys) -> tuple[int, str]:
    code = main([*args, "--db", str(db)])  # anything but a message would raise here and fail the test
    captured = capsys.readouterr()
    return code, captured.err


def stored_text(db: Path, sql: str) -> bytes:
    return query(db, sql)[0][0].encode()


def test_a_damaged_page_is_named_by_every_read_command_before_it_reads(saved, tmp_path, capsys):
    root = query(saved, "SELECT rootpage FROM sqlite_master WHERE name = 'fills'")[0][0]
    page = sqlite3.connect(saved).execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(saved.read_bytes())
    data[(root - 1) * page:(root - 1) * page + 8] = b"\xff" * 8  # the page header: no valid b-tree page type
    copy = tmp_path / "damaged.sqlite"
    copy.write_bytes(bytes(data))
    for args in READ_COMMANDS:
        code, err = run(args, copy, capsys)
        assert code != 0, args
        assert f"{copy}: the database is damaged" in err, (args, err)
        assert "Nothing was changed" in err
    assert copy.read_bytes() == bytes(data)


def test_a_row_that_is_no_longer_text_is_named_not_a_traceback(saved, tmp_path, capsys):
    fill_id = stored_text(saved, "SELECT fill_id FROM fills ORDER BY ts LIMIT 1")
    data = saved.read_bytes()
    places = [at for at in range(len(data)) if data.startswith(fill_id, at)]
    assert places
    named = 0
    for at in places:  # in the fills table and wherever else the id is kept (an index, the orders' fills)
        copy = tmp_path / f"damaged-{at}.sqlite"
        copy.write_bytes(data[:at] + b"\xff" + data[at + 1:])
        for args in READ_COMMANDS:
            code, err = run(args, copy, capsys)
            assert not err or ("the database is damaged" in err and code != 0), (at, args, err)
            named += "the database is damaged" in err
    assert named, "no read command met the damaged fill id"


def test_a_book_that_is_no_longer_json_fails_validation_and_export_with_the_file_named(saved, tmp_path, capsys):
    bids = stored_text(saved, "SELECT bids FROM market_data WHERE kind = 'book' ORDER BY seq LIMIT 1")
    copy = damaged_copy(saved, tmp_path, bids, b"{" + bids[1:])
    for args in (["validate"], ["report"]):
        assert main([*args, "--db", str(copy)]) == 1  # the audit chain sees the changed row first
        assert capsys.readouterr().out.startswith(f"{args[0]} refused: audit chain BROKEN at market_data")
        code, err = run([*args, "--ignore-audit"], copy, capsys)  # read anyway: the damage is named, not a traceback
        assert code != 0 and f"{copy}: the database is damaged" in err, (args, err)
        assert "book event at ts" in err


def test_a_fill_with_a_side_no_order_has_is_named(saved, tmp_path, capsys):
    fill_id = query(saved, "SELECT fill_id FROM fills ORDER BY ts LIMIT 1")[0][0]
    row = sqlite3.connect(saved).execute("SELECT side, strategy FROM fills WHERE fill_id = ?", (fill_id,)).fetchone()
    side = row[0].encode()
    assert side in (b"BUY", b"SELL")
    copy = tmp_path / "edited.sqlite"
    shutil.copy(saved, copy)
    with sqlite3.connect(copy) as conn:  # an edit through SQLite: the file is sound, the row is not a fill
        conn.execute("UPDATE fills SET side = 'HOLD' WHERE fill_id = ?", (fill_id,))
    code, err = run(["validate", "--ignore-audit"], copy, capsys)
    assert code != 0 and f"stored fill {fill_id} cannot be read back" in err, err
