"""Opening a database safely: check it before touching it, lock it for one writer, migrate it.

Every refusal raises StoreError naming the file, what is wrong and what to do, and leaves the
file exactly as it was: checks run on a read-only connection before anything is written.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path
from typing import IO

from engine.store.schema import MIGRATIONS, SCHEMA_VERSION

SQLITE_MAGIC = b"SQLite format 3\x00"


class StoreError(Exception):
    """A database that cannot be used as it is."""


def check_database(path: Path, thorough: bool = True) -> int:
    """The schema version of an existing database (0 for a new or empty one); raises StoreError if unusable.

    thorough adds SQLite's quick_check (reads every page): done before writing, skipped by readers.
    """
    if not path.exists():
        parent = path.resolve().parent
        if not parent.is_dir():
            raise StoreError(f"{path}: the folder {parent} does not exist; create it or pass another --db")
        return 0
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not a database file; pass a file path with --db")
    try:
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not header:
        return 0
    if not header.startswith(SQLITE_MAGIC):
        raise StoreError(f"{path}: not a paperdesk database (it is not an SQLite file). Nothing was changed; "
                         "pass another --db")
    try:
        conn = connect_readonly(path)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open it read-only ({exc}). Nothing was changed") from None
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path}: written by a newer paperdesk (schema version {version}; this paperdesk "
                             f"knows up to {SCHEMA_VERSION}). Nothing was changed; upgrade paperdesk to use it")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")] if thorough else ["ok"]
        if problems != ["ok"]:
            raise StoreError(f"{path}: the database is damaged ({'; '.join(problems)}). Nothing was changed; "
                             "restore a copy or start a new one with another --db")
        if version > 0 and conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sessions'").fetchone() is None:
            raise StoreError(f"{path}: an SQLite database, but not a paperdesk one (no sessions table). "
                             "Nothing was changed; pass another --db")
        return version
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: the database is damaged or not a database ({exc}). Nothing was changed; "
                         "restore a copy or pass another --db") from None
    finally:
        conn.close()


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A reader that cannot change the file; WAL lets it read while a session writes.

    With no WAL file beside the database (no session writing, none crashed) the file is opened
    immutable, so reading it does not even create the -wal and -shm files.
    """
    path = path.resolve()
    wal = path.with_name(path.name + "-wal")
    immutable = "&immutable=1" if not wal.exists() else ""
    return sqlite3.connect(f"{path.as_uri()}?mode=ro{immutable}", uri=True, timeout=5.0)  # as_uri escapes # ? %


def configure(conn: sqlite3.Connection) -> None:
    """Settings every writing connection needs. synchronous=FULL: a commit survives power loss, not only kill -9."""
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA busy_timeout = 5000")


def migrate(path: Path) -> int:
    """Create or bring the schema up to date, one numbered migration per transaction; returns the version."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    try:
        configure(conn)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, sql in MIGRATIONS:
            if number > version:
                conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
                version = number
        return version
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.rollback()
        raise StoreError(f"{path}: cannot prepare the database ({exc})") from None
    finally:
        conn.close()


class WriterLock:
    """One writing paperdesk per database: an flock on <db>.lock, released by the kernel even on kill -9."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        try:
            handle = open(self.path, "a+", encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"{self.path.parent}: cannot write there ({exc.strerror or exc}); the database, "
                             "its WAL and lock files need a writable folder") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StoreError(f"{self.path.with_suffix('')}: another paperdesk is running on this database "
                             f"(pid {holder}); stop it first, or use `paperdesk status` to watch it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def writer_running(db_path: Path) -> bool:
    """Whether a paperdesk currently holds the writer lock of db_path (for status; changes nothing)."""
    lock = db_path.with_name(db_path.name + ".lock")
    try:
        handle = open(lock, encoding="utf-8")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
