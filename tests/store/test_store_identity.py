"""A database is one file whatever names it: one writer through symlinks and hard links, never another
program's SQLite file adopted, and every file paperdesk creates private to its owner (issue 12)."""

import hashlib
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.session import PaperSession
from engine.store.database import StoreError, WriterLock, migrate, writer_running
from engine.store.schema import SCHEMA_VERSION
from engine.store.sessions import open_session
from tests.conftest import make_config, write_config
from tests.store.helpers import query

REPO = Path(__file__).resolve().parents[2]
BUSY = "another paperdesk is running on this database"


def paperdesk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def picture(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every file in folder: content hash, mtime and mode (what "not a byte changed" means)."""
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(folder.iterdir())}


def other_name(db: Path, kind: str) -> Path:
    """A second name for db: a symlink or a hard link, beside it or in another folder."""
    if kind == "symlink":
        link = db.with_name("link.sqlite")
        link.symlink_to(db.name)  # relative, as a user would make it
    elif kind == "hardlink":
        link = db.with_name("hard.sqlite")
        os.link(db, link)
    else:  # a hard link in another folder: no lock file beside the two names can be shared
        folder = db.parent / "elsewhere"
        folder.mkdir()
        link = folder / "hard.sqlite"
        os.link(db, link)
    return link


# --- 1. one writer per file, whatever its name --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "hardlink-elsewhere"])
@pytest.mark.parametrize("first", ["real-name-first", "other-name-first"])
def test_every_name_of_a_database_shares_its_writer_lock(tmp_path, kind, first):
    db = tmp_path / "desk.sqlite"
    db.write_bytes(b"")
    link = other_name(db, kind)
    holder_path, contender_path = (db, link) if first == "real-name-first" else (link, db)
    holder = WriterLock(holder_path)
    holder.acquire()
    try:
        assert writer_running(db) and writer_running(link)
        with pytest.raises(StoreError, match=re.escape(f"{BUSY} (pid {os.getpid()})")) as refused:
            WriterLock(contender_path).acquire()
        # the message names the path the running writer uses
        shown = holder_path.resolve() if "hardlink" in kind else holder_path
        assert f" as {shown};" in str(refused.value), str(refused.value)
    finally:
        holder.release()
    assert not writer_running(db) and not writer_running(link)
    contender = WriterLock(contender_path)
    contender.acquire()
    contender.release()


def test_a_symlink_to_a_database_not_created_yet_shares_the_lock(tmp_path):
    db = tmp_path / "desk.sqlite"
    link = tmp_path / "link.sqlite"
    link.symlink_to(db)  # dangling: the first run creates the file behind it
    holder = WriterLock(link)
    holder.acquire()
    try:
        assert db.exists() and db.stat().st_size == 0 and mode(db) == 0o600
        assert not (tmp_path / "link.sqlite.lock").exists() and mode(tmp_path / "desk.sqlite.lock") == 0o600
        with pytest.raises(StoreError, match=re.escape(f"{BUSY} (pid {os.getpid()}) as {link}")):
            WriterLock(db).acquire()
    finally:
        holder.release()


def test_the_lock_outlives_sqlite_opening_and_closing_the_file_in_the_same_process(tmp_path):
    # SQLite's own locks are POSIX fcntl locks, which a process loses on closing any descriptor of the
    # file; the writer lock is an flock, which that does not touch
    db = tmp_path / "desk.sqlite"
    holder = WriterLock(db)
    holder.acquire()
    try:
        migrate(db)
        for _ in range(3):
            conn = sqlite3.connect(db)
            conn.execute("SELECT COUNT(*) FROM sessions").fetchone()
            conn.close()
        with pytest.raises(StoreError, match=BUSY):
            WriterLock(other_name(db, "hardlink")).acquire()
    finally:
        holder.release()


def test_kill_9_releases_the_lock_taken_through_a_hard_link(tmp_path):
    db = tmp_path / "desk.sqlite"
    db.write_bytes(b"")
    link = other_name(db, "hardlink")
    code = ("import sys, time; from pathlib import Path; from engine.store.database import WriterLock; "
            f"WriterLock(Path({str(link)!r})).acquire(); print('locked', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        assert writer_running(db)
        with pytest.raises(StoreError, match=re.escape(f"{BUSY} (pid {child.pid}) as {link.resolve()};")):
            WriterLock(db).acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert not writer_running(db)
    lock = WriterLock(db)
    lock.acquire()
    lock.release()


def test_a_second_run_through_a_symlink_or_a_hard_link_is_refused_and_the_first_loses_nothing(tmp_path):
    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    command = [sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config)]
    # no --duration: it runs until told to stop, so the refusals below surely meet it running
    first = subprocess.Popen([*command, "--db", str(db)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        lines = []
        while not any("started session" in line for line in lines):
            line = first.stdout.readline()
            assert line, first.stderr.read()
            lines.append(line)
        symlink, hardlink = other_name(db, "symlink"), other_name(db, "hardlink")
        for link, shown in ((symlink, db), (hardlink, db.resolve())):
            second = paperdesk("run", "--no-ui", "--duration", "1", "--config", str(config), "--db", str(link))
            assert second.returncode == 2, (link, second.stdout, second.stderr)
            assert f"{BUSY} (pid {first.pid}) as {shown};" in second.stderr, second.stderr
            assert "Traceback" not in second.stderr
        status = paperdesk("status", "--db", str(hardlink), "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["running"] is True, status.stdout + status.stderr
        assert first.poll() is None, "the first run must still be writing"
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    summary = out.strip().splitlines()[-1]
    assert " summary stopped_by=SIGTERM " in summary, out
    fills = int(re.search(r" fills=(\d+) ", summary).group(1))
    saved_rows = int(re.search(r" saved_rows=(\d+) ", summary).group(1))
    assert fills > 0 and query(db, "SELECT COUNT(*) FROM fills") == [(fills,)]
    assert saved_rows > 0 and query(db, "SELECT restarts, status FROM sessions") == [(0, "STOPPED")]
    assert not (tmp_path / "link.sqlite.lock").exists()  # the symlink's run used the real file's lock
    assert mode(db) == 0o600 and mode(tmp_path / "desk.sqlite.lock") == 0o600
    status = paperdesk("status", "--db", str(symlink), "--json")
    assert json.loads(status.stdout)["running"] is False


# --- 2. another program's SQLite file is never adopted ------------------------------------------------------


def another_programs_database(path: Path, user_version: int, journal: str = "delete",
                              tables: tuple[str, ...] = ("notes",)) -> Path:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    for table in tables:
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, text TEXT)")
        conn.executemany(f"INSERT INTO {table} (text) VALUES (?)", [(f"{table} {i}",) for i in range(50)])
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()
    return path


def test_another_programs_sqlite_file_with_user_version_0_is_refused_byte_for_byte(tmp_path):
    config = write_config(tmp_path / "c.toml")
    folder = tmp_path / "data"
    folder.mkdir()
    db = another_programs_database(folder / "notes.sqlite", 0)
    time.sleep(0.01)  # a write now would show in the mtime
    before = picture(folder)
    for args in (["run", "--no-ui", "--duration", "1", "--config", str(config)], ["status"]):
        result = paperdesk(*args, "--db", str(db))
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "an SQLite database with tables notes, but not a paperdesk one" in result.stderr, result.stderr
        assert "Nothing was changed; pass --db a new file" in result.stderr and "Traceback" not in result.stderr
    assert picture(folder) == before  # not a byte, not an mtime, and no lock, WAL or SHM file
    assert query(db, "SELECT COUNT(*) FROM notes") == [(50,)]


@pytest.mark.parametrize(("user_version", "journal", "tables", "expected"), [
    (0, "delete", ("notes",), "with tables notes, but not a paperdesk one (no sessions table)"),
    (0, "wal", ("notes", "todo"), "with tables notes, todo, but not a paperdesk one (no sessions table)"),
    (2, "delete", ("notes",), "with tables notes (user_version 2), but not a paperdesk one"),
    (SCHEMA_VERSION + 5, "delete", ("notes",), f"with tables notes (user_version {SCHEMA_VERSION + 5}), but not"),
    (0, "delete", ("sessions",), "with tables sessions, but not a paperdesk one (no paperdesk schema version)"),
    (1, "delete", ("sessions",), "a sessions table, but not a paperdesk one at its schema version 1 (no audit, "),
    (5, "delete", (), "with no tables (user_version 5), but not a paperdesk one"),
], ids=["v0", "v0-wal", "v2", "newer", "sessions-v0", "sessions-v1", "no-tables-v5"])
def test_no_sqlite_file_of_another_program_is_written_to_whatever_its_user_version(tmp_path, user_version, journal,
                                                                                   tables, expected):
    folder = tmp_path / "data"
    folder.mkdir()
    db = another_programs_database(folder / "other.sqlite", user_version, journal, tables)
    time.sleep(0.01)
    before = picture(folder)
    with pytest.raises(StoreError, match=re.escape(expected)):
        open_session(db, WriterLock(db), make_config(), False, 0)
    with pytest.raises(StoreError, match=re.escape(expected)):  # migrate checks again under the lock
        migrate(db)
    assert not writer_running(db)
    assert picture(folder) == before


@pytest.mark.parametrize("start", ["no-file", "empty-file", "empty-sqlite-database"])
def test_a_new_path_an_empty_file_or_an_empty_sqlite_database_is_initialised(tmp_path, start):
    db = tmp_path / "desk.sqlite"
    if start == "empty-file":
        db.write_bytes(b"")
    elif start == "empty-sqlite-database":  # what a first run killed before its first migration leaves
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("VACUUM")
        conn.close()
        assert db.stat().st_size > 0
    lock = WriterLock(db)
    opened = open_session(db, lock, make_config(), False, 0)
    lock.release()
    assert not opened.resumed and query(db, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


# --- 3. private files ---------------------------------------------------------------------------------------


async def test_the_database_its_wal_shm_and_lock_files_are_created_0600(tmp_path):
    old = os.umask(0o022)  # the usual umask, which would make them 0644
    try:
        db = tmp_path / "desk.sqlite"
        session = PaperSession(make_config(), db_path=db)
        await session.open()
        try:
            assert await session.writer.flush()
            files = {p.name: mode(p) for p in tmp_path.iterdir()}
            assert files == {"desk.sqlite": 0o600, "desk.sqlite-wal": 0o600, "desk.sqlite-shm": 0o600,
                             "desk.sqlite.lock": 0o600}, {name: oct(m) for name, m in files.items()}
        finally:
            await session.close()
        assert mode(db) == 0o600 and mode(tmp_path / "desk.sqlite.lock") == 0o600
    finally:
        os.umask(old)
