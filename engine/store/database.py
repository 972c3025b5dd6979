"""Opening a database safely: check it before touching it, lock it for one writer, migrate it.

Every refusal raises StoreError naming the file, what is wrong and what to do, and leaves the
file exactly as it was: checks run on a read-only connection before anything is written.

Files paperdesk creates (the database, its lock file; SQLite gives the -wal and -shm files the
database's mode) are private to their owner: 0600.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import sqlite3
import threading
from pathlib import Path

from engine.store.schema import MIGRATIONS, SCHEMA_VERSION

SQLITE_MAGIC = b"SQLite format 3\x00"
PRIVATE = 0o600  # trading records are nobody else's business
LOCK_TRIES = 25  # acquire retries a busy lock 10 ms apart: `status` probes it for an instant
_PAUSE = threading.Event()  # never set: waiting on it pauses without reading the time (engine/clock.py does that)


class StoreError(Exception):
    """A database that cannot be used as it is."""


def _tables_at(version: int) -> set[str]:
    """The tables a paperdesk database at schema `version` has, read from the migrations themselves."""
    tables: set[str] = set()
    for number, sql in MIGRATIONS:
        if number > version:
            break
        tables |= set(re.findall(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", sql, re.IGNORECASE))
        tables -= set(re.findall(r"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\w+)", sql, re.IGNORECASE))
    return tables


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _identify(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of a paperdesk (or empty) database; StoreError saying what else it seems to be.

    Only an SQLite database with nothing in it (no tables, no views, user_version and application_id 0:
    what a first run killed before its first migration leaves, too) is paperdesk's to initialise.
    Anything else must carry paperdesk's sessions table and schema version: whatever its user_version,
    another program's database is never written to.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    objects = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                           "ORDER BY name").fetchall()
    if not objects and version == 0 and app_id == 0:
        return 0
    tables = [name for kind, name in objects if kind == "table"]
    if tables:
        what = f"with tables {_names(tables)}"
    elif objects:
        what = f"with no tables ({_names([f'{kind} {name}' for kind, name in objects])})"
    else:
        what = "with no tables"
    marks = ([f"user_version {version}"] if version else []) + ([f"application_id {app_id}"] if app_id else [])
    if marks:
        what += f" ({', '.join(marks)})"
    if "sessions" not in tables:
        raise StoreError(f"{path}: an SQLite database {what}, but not a paperdesk one (no sessions table). "
                         "Nothing was changed; pass --db a new file")
    if version == 0:
        raise StoreError(f"{path}: an SQLite database {what}, but not a paperdesk one (no paperdesk schema "
                         "version). Nothing was changed; pass --db a new file")
    return version


def check_database(path: Path, thorough: bool = True) -> int:
    """The schema version of an existing database (0 for a new or empty one); raises StoreError if unusable.

    thorough adds SQLite's quick_check (reads every page): done before writing and reading, skipped by operator
    commands (an emergency stop must not wait on a scan of a large file).
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
        version = _identify(conn, path)
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path}: written by a newer paperdesk (schema version {version}; this paperdesk "
                             f"knows up to {SCHEMA_VERSION}). Nothing was changed; upgrade paperdesk to use it")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")] if thorough else ["ok"]
        if problems != ["ok"]:
            raise StoreError(f"{path}: the database is damaged ({'; '.join(problems)}). Nothing was changed; "
                             "restore a copy or start a new one with another --db")
        present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = sorted(_tables_at(version) - present)
        if missing:
            raise StoreError(f"{path}: an SQLite database with a sessions table, but not a paperdesk one at its "
                             f"schema version {version} (no {_names(missing)} table). Nothing was changed; "
                             "pass --db a new file")
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


def _open_private(path: Path, flags: int) -> int:
    """os.open creating the file owner-only (0600) if it does not exist; an existing file keeps its mode."""
    return os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, PRIVATE)


def migrate(path: Path) -> int:
    """Create or bring the schema up to date, one numbered migration per transaction; returns the version.

    Checks the file again first (the caller holds the writer lock now): whatever is not a paperdesk
    database, or an empty one, is refused before a byte is written. A new database is created 0600.
    """
    check_database(path, thorough=False)
    try:
        os.close(_open_private(path, os.O_RDONLY))
    except OSError as exc:
        raise StoreError(f"{path}: cannot create it ({exc.strerror or exc})") from None
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


def _real(db_path: Path) -> Path:
    """The database file's real path: every symlink to one file names the same lock."""
    try:
        return db_path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop: RuntimeError before Python 3.13
        raise StoreError(f"{db_path}: cannot follow the path ({exc})") from None


def lock_path(db_path: Path) -> Path:
    """The writer's lock file, <db>.lock beside the real database file (symlinks followed)."""
    real = _real(db_path)
    return real.with_name(real.name + ".lock")


def _flock_now(fd: int) -> bool:
    """Take an exclusive flock on fd, retrying for a moment: a `status` probe holds a shared one for an instant."""
    for attempt in range(LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < LOCK_TRIES:
                _PAUSE.wait(0.01)
    return False


def _flock_holders(st: os.stat_result) -> list[int]:
    """Pids holding an exclusive flock on the file st describes, read from /proc/locks (Linux; [] elsewhere).

    A line looks like `1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146608 0 EOF` (device major:minor in hex);
    a waiter's line has `->` before FLOCK and is skipped.
    """
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return []
    exact = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    same_inode: list[int] = []
    pids: list[int] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[3] != "WRITE":
            continue
        if fields[5] == exact:
            pids.append(int(fields[4]))
        elif fields[5].rsplit(":", 1)[-1] == str(st.st_ino):  # btrfs and others report another device number
            same_inode.append(int(fields[4]))
    return pids or (same_inode if len(same_inode) == 1 else [])


def _opened_as(pid: int, st: os.stat_result) -> str | None:
    """The path through which process pid opened the file st describes (Linux /proc; None if it cannot tell)."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    for fd in fds:
        try:
            target = os.stat(fd)  # follows /proc's link to the open file itself
            if (target.st_dev, target.st_ino) == (st.st_dev, st.st_ino):
                return os.readlink(fd)
        except OSError:
            continue
    return None


class WriterLock:
    """One writing paperdesk per database file, whatever path names it; released by the kernel even on kill -9.

    Two flocks: on <db>.lock beside the real file (symlinks resolved; it holds the writer's pid and
    path for the messages), and on the database file itself, which every hard link to it shares.
    flock does not touch SQLite's own POSIX (fcntl) locks on Linux. The database file is created
    (empty, 0600) if it does not exist yet, so there is something to lock.
    """

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = db_path.with_name(db_path.name + ".lock")  # until acquire resolves it
        self._lock_fd: int | None = None
        self._db_fd: int | None = None

    def acquire(self) -> None:
        if self._lock_fd is not None:
            return
        real = _real(self.db_path)
        self.path = real.with_name(real.name + ".lock")
        try:
            lock_fd = _open_private(self.path, os.O_RDWR)
        except OSError as exc:
            raise self._cannot(exc, "create or open the lock file") from None
        try:
            if not _flock_now(lock_fd):
                pid, _, other = os.pread(lock_fd, 8192, 0).decode(errors="replace").strip().partition("\n")
                raise self._busy(pid or "unknown", other)
            try:  # ours now: say who writes, for another writer's refusal; a full disk fails here, before the database
                os.ftruncate(lock_fd, 0)
                os.pwrite(lock_fd, f"{os.getpid()}\n{os.path.abspath(self.db_path)}\n".encode(), 0)
            except OSError as exc:
                raise self._cannot(exc, "write the lock file") from None
            try:
                db_fd = _open_private(real, os.O_RDONLY)
            except OSError as exc:
                raise StoreError(f"{self.db_path}: cannot open or create it ({exc.strerror or exc})") from None
            if not _flock_now(db_fd):
                st = os.fstat(db_fd)
                os.close(db_fd)
                holders = _flock_holders(st)
                pid = str(holders[0]) if holders else "unknown"
                raise self._busy(pid, (_opened_as(holders[0], st) or "") if holders else "")
        except BaseException:
            os.close(lock_fd)
            raise
        self._lock_fd, self._db_fd = lock_fd, db_fd

    def _cannot(self, exc: OSError, what: str) -> StoreError:
        """Why the lock file cannot be had, in words that point at the fix: a full disk, a read-only file or folder."""
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return StoreError(f"{self.path}: cannot {what}: the disk is full or a size limit was reached ({reason}). "
                              "Nothing was written to the database; free some space and start again")
        if exc.errno in (errno.EACCES, errno.EPERM) and self.path.exists():
            return StoreError(f"{self.path}: cannot {what}: the lock file is read-only or not yours ({reason}). "
                              "If no paperdesk is running on this database, make it writable (chmod u+w) or "
                              "delete it, then start again")
        return StoreError(f"{self.path.parent}: cannot write there ({reason}); the database, its WAL and lock files "
                          "need a writable folder")

    def _busy(self, pid: str, other: str) -> StoreError:
        other = other.strip()
        as_other = f" as {other}" if other and other != os.path.abspath(self.db_path) else ""
        return StoreError(f"{self.db_path}: another paperdesk is running on this database (pid {pid}){as_other}; "
                          "stop it first, or use `paperdesk status` to watch it")

    def release(self) -> None:
        """Let go of both locks. Call it after the process's SQLite connections to the database are closed."""
        for fd in (self._db_fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._db_fd = self._lock_fd = None


def writer_running(db_path: Path) -> bool:
    """Whether a paperdesk currently holds the writer lock of db_path, by any name (for status; changes nothing).

    Probes the lock file beside the real database (every symlink's writer), then looks the database
    file's own flock up in /proc/locks (a writer through a hard link). The database file itself is
    never opened here: closing a descriptor of it would drop this process's SQLite read locks on it.
    """
    try:
        lock = lock_path(db_path)
        st = os.stat(db_path)
    except (StoreError, OSError):
        return False
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        pass
    else:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
    return bool(_flock_holders(st))
