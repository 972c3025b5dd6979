"""Bad databases and bad places: each gives a clear error and leaves the file exactly as it was."""

import hashlib
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from engine.session import PaperSession
from engine.store.database import StoreError, WriterLock
from engine.store.schema import SCHEMA_VERSION
from engine.store.sessions import open_session
from tests.conftest import make_config, write_config

REPO = Path(__file__).resolve().parents[2]


def paperdesk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def fingerprint(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


async def a_real_database(path: Path) -> Path:
    await PaperSession(make_config(), db_path=path).run(duration=0.5)
    path.with_name(path.name + ".lock").unlink()
    return path


def refused_by_every_command(db: Path, config: Path, expected: str) -> None:
    before = fingerprint(db.parent)
    for args in (["run", "--no-ui", "--duration", "1", "--config", str(config)], ["status"], ["sessions"],
                 ["export", "--what", "fills"], ["audit", "verify"]):
        result = paperdesk(*args, "--db", str(db))
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    assert fingerprint(db.parent) == before  # not a byte changed, no WAL or lock file created


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path):
    config = write_config(tmp_path / "c.toml")
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "notes.sqlite"
    db.write_text("these are my trading notes, not a database\n" * 50)
    refused_by_every_command(db, config, "not a paperdesk database (it is not an SQLite file)")


async def test_a_truncated_database_is_refused_untouched(tmp_path):
    config = write_config(tmp_path / "c.toml")
    folder = tmp_path / "data"
    folder.mkdir()
    db = await a_real_database(folder / "desk.sqlite")
    data = db.read_bytes()
    assert len(data) > 16384
    db.write_bytes(data[: len(data) // 2])
    before = fingerprint(folder)
    result = paperdesk("run", "--no-ui", "--duration", "1", "--config", str(config), "--db", str(db))
    assert result.returncode == 2 and "the database is damaged" in result.stderr, result.stderr
    assert "Nothing was changed" in result.stderr
    assert fingerprint(folder) == before


async def test_a_database_from_a_newer_paperdesk_is_refused_untouched(tmp_path):
    config = write_config(tmp_path / "c.toml")
    folder = tmp_path / "data"
    folder.mkdir()
    db = await a_real_database(folder / "desk.sqlite")
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    refused_by_every_command(db, config, f"written by a newer paperdesk (schema version {SCHEMA_VERSION + 5}")


async def test_a_sqlite_database_of_another_program_is_refused_untouched(tmp_path):
    config = write_config(tmp_path / "c.toml")
    folder = tmp_path / "data"
    folder.mkdir()
    db = folder / "other.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    refused_by_every_command(db, config, "not a paperdesk one (no sessions table)")


def _in_child_without_root(fn) -> str:
    """Run fn() in a forked child as an unprivileged user (root ignores permissions); returns what it printed."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        os.close(read)
        try:
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            message = fn()
        except BaseException as exc:  # report anything, including the unexpected
            message = f"{type(exc).__name__}: {exc}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("existing", [True, False], ids=["existing-db", "new-db"])
async def test_a_read_only_folder_is_refused_untouched(existing):
    folder = Path(tempfile.mkdtemp(prefix="paperdesk-ro-"))
    try:
        db = folder / "desk.sqlite"
        if existing:
            await a_real_database(db)
            db.chmod(0o644)
        folder.chmod(0o555)
        before = fingerprint(folder)
        config = make_config()

        def try_to_open() -> str:
            try:
                open_session(db, WriterLock(db), config, False, 0)
            except StoreError as exc:
                return f"StoreError: {exc}"
            return "opened"

        message = _in_child_without_root(try_to_open)
        assert message.startswith("StoreError: ") and "cannot write" in message, message
        assert str(folder) in message
        assert fingerprint(folder) == before
    finally:
        folder.chmod(0o755)
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


async def test_a_full_disk_stops_trading_loses_nothing_saved_and_resumes_later(tmp_path):
    db = tmp_path / "desk.sqlite"
    config = make_config(store={"write_retry_seconds": 0.5, "flush_ms": 20.0})
    session = PaperSession(config, db_path=db)
    await session.open()
    assert await session.writer.flush()
    pages = (await (await session.writer.db.execute("PRAGMA page_count")).fetchone())[0]
    # what SQLite reports when the disk is full (SQLITE_FULL), without filling a real disk
    await session.writer.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError, match=r"cannot write to the database .*full.*stopped trading"):
        await session.run(duration=20)
    assert session.writer.failed is not None and session.journal.count > 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT status FROM sessions").fetchone() == ("RUNNING",)  # left resumable
    saved = conn.execute("SELECT COUNT(*) FROM market_data").fetchone()[0]
    conn.close()
    # space again: the session resumes from what was saved and carries on
    resumed = PaperSession(config, db_path=db)
    await resumed.run(duration=0.5)
    assert resumed.recovered is not None and resumed.recovered.events == saved


async def test_a_second_paperdesk_on_the_same_database_is_refused(tmp_path):
    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    first = subprocess.Popen([sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config),
                              "--db", str(db)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert " start " in first.stdout.readline()
        second = paperdesk("run", "--no-ui", "--duration", "1", "--config", str(config), "--db", str(db))
        assert second.returncode == 2
        assert f"another paperdesk is running on this database (pid {first.pid})" in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=30)
    assert first.returncode == 0


def test_a_read_only_lock_file_is_named_as_the_lock_file_not_the_folder():
    folder = Path(tempfile.mkdtemp(prefix="paperdesk-rolock-"))
    try:
        folder.chmod(0o777)  # the folder is writable by anyone: only the lock file is in the way
        db = folder / "desk.sqlite"
        lock = folder / "desk.sqlite.lock"
        lock.write_text("4242\n/elsewhere/desk.sqlite\n")
        lock.chmod(0o444)
        before = fingerprint(folder)

        def try_to_open() -> str:
            try:
                open_session(db, WriterLock(db), make_config(), False, 0)
            except StoreError as exc:
                return f"StoreError: {exc}"
            return "opened"

        message = _in_child_without_root(try_to_open)
        assert message.startswith(f"StoreError: {lock}: cannot create or open the lock file: the lock file is "
                                  "read-only"), message
        assert "chmod u+w" in message and "folder" not in message
        assert fingerprint(folder) == before and not db.exists()
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


@pytest.mark.parametrize("lock_exists", [False, True], ids=["new-lock", "existing-lock"])
def test_no_room_to_write_the_lock_file_is_a_message_and_no_database(tmp_path, lock_exists):
    """A file size limit of 0 makes every write fail as a full disk does (EFBIG here, ENOSPC there): same path."""
    import resource

    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    if lock_exists:
        (tmp_path / "desk.sqlite.lock").write_text("4242\n/elsewhere/desk.sqlite\n")

    def no_room() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    result = subprocess.run([sys.executable, "-m", "console.cli", "run", "--no-ui", "--duration", "1", "--config",
                             str(config), "--db", str(db)], capture_output=True, text=True, timeout=60,
                            preexec_fn=no_room, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"{tmp_path / 'desk.sqlite.lock'}: cannot write the lock file: the disk is full" in result.stderr, \
        result.stderr
    assert not db.exists()
