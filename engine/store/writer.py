"""The single writer: one task commits the journal's rows in batches through aiosqlite's thread.

Committed means durable: a batch is one transaction in WAL mode with synchronous=FULL, so once
flush() returns, its rows survive kill -9 and power loss. The writer flushes every flush_ms, so a
fill is durable within flush_ms plus one commit (100 ms + a few ms by default). The event loop
never waits for disk on a market event; when the backlog passes max_backlog_rows the session
waits for the writer between market steps (back-pressure), and those waits are counted. Each
commit chains what it wrote in the audit chain (engine/store/audit.py) inside the same transaction.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import Any, cast

import aiosqlite

from engine.clock import monotonic_s, utc_text, wall_ns
from engine.store.audit import (
    COLUMNS_SQL,
    INSERT_AUDIT,
    ROWS,
    RowsEntry,
    append_rows,
    event_entries,
    last_rowids_sql,
    link,
    stored_columns,
    table_columns,
    written_blocks,
)
from engine.store.database import StoreError
from engine.store.journal import OPS, WRITTEN, StoreJournal, appended_tables, batch_reads

CHUNK_ROWS = 200
SQL: dict[str, str] = {
    "market": "INSERT OR IGNORE INTO market_data VALUES (" + ",".join("?" * 17) + ")",
    "decision": "INSERT OR IGNORE INTO decisions VALUES (" + ",".join("?" * 15) + ")",
    "missed": "INSERT OR IGNORE INTO missed_market_data VALUES (" + ",".join("?" * 18) + ")",
    "score": "INSERT OR REPLACE INTO behaviour_scores VALUES (?,?,?,?,?,?)",
    "behaviour": ("INSERT INTO behaviour_series (session_id, wall_ns, market_ts, market_seq, strategy, score, "
                  "signal_agreement, timing, count_ratio, matched_share, unexplained) VALUES (?,?,?,?,?,?,?,?,?,?,?)"),
    "order": ("INSERT INTO orders VALUES (" + ",".join("?" * 17) + ") ON CONFLICT(session_id, client_id) DO UPDATE "
              "SET status = excluded.status, filled_qty = excluded.filled_qty, "
              "avg_fill_price = excluded.avg_fill_price, reason = excluded.reason, updated_ns = excluded.updated_ns"),
    "order_event": "INSERT OR IGNORE INTO order_events VALUES (?,?,?,?,?,?,?)",
    "fill": "INSERT OR IGNORE INTO fills VALUES (" + ",".join("?" * 16) + ")",
    "strategy": "INSERT OR REPLACE INTO strategies VALUES (?,?,?,?,?,?,?,?,?,?)",
    "venue_state": "INSERT OR REPLACE INTO venue_state VALUES (?,?,?,?)",
    "venue_event": "INSERT INTO venue_events VALUES (?,?,?,?,?,?,?,?,?,?)",
    "equity": "INSERT OR REPLACE INTO equity VALUES (?,?,?,?,?,?,?)",
    "position": "INSERT OR REPLACE INTO positions VALUES (?,?,?,?,?,?,?,?)",
    "mark": ("UPDATE sessions SET heartbeat_wall_ns = ?, market_ts = ?, equity = ?, cash = ?, realised = ?, "
             "unrealised = ?, fees = ? WHERE id = ?"),
    "state_event": ("INSERT INTO state_events (session_id, wall_ns, market_ts, scope, kind, detail) "
                    "VALUES (?,?,?,?,?,?)"),
    "risk_state": "INSERT OR REPLACE INTO risk_state VALUES (?,?,?,?,?)",
    "command": ("UPDATE commands SET handled_wall_ns = ?, result = ?, market_seq = ?, market_ts = ?, ok = ? "
                "WHERE id = ?"),
    "command_new": ("INSERT INTO commands (session_id, wall_ns, command, args, reason, source, handled_wall_ns, "
                    "result, market_seq, market_ts, ok) VALUES (?,?,?,?,?,?,?,?,?,?,?)"),
}


class StoreWriter:
    """Owns the database connection a session writes through; nothing else writes while it runs."""

    def __init__(self, db: aiosqlite.Connection, journal: StoreJournal, audit_head: tuple[int, str],
                 flush_ms: float = 100.0, max_backlog_rows: int = 200_000, retry_seconds: float = 5.0) -> None:
        self.db = db
        self.journal = journal
        self.flush_s = flush_ms / 1000.0
        self.max_backlog_rows = max_backlog_rows
        self.retry_seconds = retry_seconds
        self.audit_seq, self.audit_hash = audit_head
        self.rows_committed = 0
        self.batches = 0
        self.waits = 0
        self.wait_ms = 0.0
        self.max_commit_ms = 0.0
        self.error: str | None = None  # the last commit failure, while failing
        self.failed: StoreError | None = None  # set when failures outlasted retry_seconds: stop trading
        self.committed: dict[str, int] = {op: 0 for op in (*OPS, "audit")}  # rows committed, per table operation
        # rows committed into a database or write-ahead log that the path no longer names: not durable
        self.lost: dict[str, int] = {}
        self._halted = False  # the files were deleted or replaced under this connection: it writes nothing more
        self._paths: list[str] | None = None  # the database file and its WAL, as SQLite names them
        self._files: dict[str, tuple[int, int]] = {}  # path -> (st_dev, st_ino), as first seen
        self._started_wall_ns = wall_ns()
        self._failing_since: float | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._wake = asyncio.Event()
        self._tables: dict[str, tuple[str, ...]] | None = None  # every table's columns (_columns)

    @property
    def backlog(self) -> int:
        return self.journal.count

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="paperdesk-store-writer")

    async def _run(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            except TimeoutError:
                pass
            await self.flush()

    async def flush(self) -> bool:
        """Commit everything queued so far; False (rows kept queued) if the database refused it."""
        async with self._lock:
            if self._halted:
                return False  # the files this connection writes are not the database any more: write nothing
            batch, audit, count = self.journal.take()
            if not count:
                return True
            started = monotonic_s()
            try:
                if self._paths is None:
                    await self._learn_files()
                await self._commit(batch, audit, count)
            except BaseException as exc:
                self.journal.put_back(batch, audit, count)  # whatever went wrong, the rows stay queued
                if not isinstance(exc, sqlite3.Error):
                    raise
                self._failure(exc)
                return False
            elapsed = (monotonic_s() - started) * 1000.0
            self.max_commit_ms = max(self.max_commit_ms, elapsed)
            self.rows_committed += count
            self.batches += 1
            for op in OPS:
                self.committed[op] += len(batch[op])
            self.committed["audit"] += len(audit)  # the journal's entries (a commit's `rows` entry is the chain's)
            self.error = None
            self._failing_since = None
            return await self._check_files()

    def unsaved(self) -> dict[str, int]:
        """Rows per table operation that are not durable: still queued, or committed into lost files."""
        out = dict(self.lost)
        for op, rows in self.journal.pending.items():
            if rows:
                out[op] = out.get(op, 0) + len(rows)
        if self.journal.audit:
            out["audit"] = out.get("audit", 0) + len(self.journal.audit)
        return out

    async def _learn_files(self) -> None:
        """Before the first commit: the database file's identity as its path names it (the WAL's comes with the
        first commit, which creates it)."""
        rows = await (await self.db.execute("PRAGMA database_list")).fetchall()
        main = next(row[2] for row in rows if row[1] == "main")
        self._paths = [main, main + "-wal"]
        identity = _identity(main)
        if identity is not None:
            self._files[main] = identity

    async def _check_files(self) -> bool:
        """After a commit: the database and its WAL must still be the files the path names. A deleted or replaced
        -wal (or database) means what was committed through this connection is not where anyone will read it, and
        is gone after kill -9: say so and stop trading, never count it as saved."""
        paths = self._paths
        assert paths is not None
        # stat calls run off the event loop, which never waits on disk
        now = await asyncio.to_thread(lambda: {path: _identity(path) for path in paths})
        for path, identity in now.items():
            if path not in self._files and identity is not None:
                self._files[path] = identity  # the WAL, first seen after the first commit
        gone = [p for p, v in now.items() if v is None or v != self._files[p]]
        if not gone:
            return True
        what = " and ".join(
            f"{'the write-ahead log' if p.endswith('-wal') else 'the database file'} {p} was "
            f"{'deleted' if now[p] is None else 'replaced by another file'}" for p in gone)
        self.error = f"{what} while the session was writing"
        committed = sum(self.committed.values())
        since = f"since {utc_text(self._started_wall_ns)} UTC (when this process opened the database)"
        if all(p.endswith("-wal") for p in gone) and await self._rescue():
            # the database file is still the one the path names: a checkpoint copied the lost log's pages into it
            self.failed = StoreError(
                f"{what} while the session was writing; stopped trading. A checkpoint copied the {committed} rows "
                f"committed {since} into the database file, so they are saved; {self.journal.count} queued rows "
                "were not, and nothing more is written. Do not delete or replace a running database's files; "
                "resuming (the same command) continues from what was saved")
            self._halted = True  # nothing is lost, but nothing more may be written through this connection
            return False
        self._halted = True
        self.lost = {op: n for op, n in self.committed.items() if n}
        self.rows_committed -= committed
        detail = ", ".join(f"{n} {label(op)}" for op, n in self.lost.items())
        queued = f", and {self.journal.count} queued rows were not saved" if self.journal.count else ""
        self.failed = StoreError(
            f"{what} while the session was writing; stopped trading. The {committed} rows committed {since} "
            f"({detail}) may not be durable and are lost if this process ends{queued}; nothing more is written."
            " Do not delete or replace a running database's files; resuming (the same command) starts "
            "from what the database file holds")
        return False

    async def _rescue(self) -> bool:
        """Copy the deleted log's pages (still open here) into the database file and empty the log's index, so the
        file holds every committed row and readers see no frames of a log they cannot open."""
        try:
            row = await (await self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")).fetchone()
        except sqlite3.Error:
            return False
        return row is not None and row[0] == 0

    async def make_room(self) -> None:
        """Back-pressure: called between market steps; waits while the backlog is over the limit."""
        if self.journal.count <= self.max_backlog_rows:
            return
        self.waits += 1
        started = monotonic_s()
        while self.journal.count > self.max_backlog_rows:
            self.check()
            if not await self.flush():
                await asyncio.sleep(min(0.5, self.flush_s * 5))
        self.wait_ms += (monotonic_s() - started) * 1000.0

    async def end_session(self, status: str, reason: str) -> None:
        """Commit what is queued, then record how the session ended (a stopped session stays resumable)."""
        if not await self.flush():
            return
        await self.db.execute("UPDATE sessions SET status = ?, ended_wall_ns = ?, stop_reason = ? WHERE id = ?",
                              (status, wall_ns(), reason, self.journal.session_id))

    def check(self) -> None:
        """Raise StoreError if the writer can no longer save: failing too long, or its task died."""
        if self.failed is not None:
            raise self.failed
        task = self._task
        if task is not None and task.done() and not self._closing:
            problem = "cancelled" if task.cancelled() else repr(task.exception())
            raise StoreError(f"the database writer stopped unexpectedly ({problem}); stopped trading. "
                             f"{self.journal.count} rows were not saved; the session resumes from its last saved "
                             "point (run the same command)")

    async def close(self) -> None:
        """Stop the flushing task and commit what is left (one last try), then close the connection."""
        self._closing = True
        self._wake.set()
        try:
            died = None
            if self._task is not None:
                # awaited, not cancelled: a commit in progress must finish; a task that died was reported by check()
                died, = await asyncio.gather(self._task, return_exceptions=True)
            if died is None:
                await self.flush()
        finally:
            await self.db.close()

    async def _commit(self, batch: dict[str, list[tuple[Any, ...]]], audit: list[tuple[int, str, str, dict[str, Any]]],
                      count: int) -> None:
        """One transaction: the batch's rows, its events chained, then its rows chained in one `rows` entry
        (engine/store/audit.py): market data as written, the rest read back."""
        columns = await self._columns()
        written = {table: (columns[table], batch[op]) for op, table in WRITTEN.items() if batch[op]}
        # digested in a worker thread while SQLite stores the batch: repr holds the GIL, SQLite's inserts release it
        digesting = asyncio.ensure_future(asyncio.to_thread(written_blocks, written))
        try:
            audit_rows = await self._store(batch, audit, count, columns, digesting)
        finally:
            await asyncio.wait([digesting])  # never left running past its commit
        if audit_rows:
            self.audit_seq, self.audit_hash = audit_rows[-1][0], audit_rows[-1][7]

    async def _store(self, batch: dict[str, list[tuple[Any, ...]]], audit: list[tuple[int, str, str, dict[str, Any]]],
                     count: int, columns: dict[str, tuple[str, ...]],
                     digesting: asyncio.Future[list[str]]) -> list[tuple[Any, ...]]:
        db = self.db
        session_id = self.journal.session_id
        appended = appended_tables(batch)
        await db.execute("BEGIN IMMEDIATE")
        try:
            last: dict[str, int] = {}
            if appended:
                async with db.execute(last_rowids_sql(appended)) as cur:
                    row = await cur.fetchone()
                    assert row is not None  # a SELECT of scalar subqueries gives one row
                    last = dict(zip(appended, row, strict=True))
            for op in OPS:
                rows = batch[op]
                # short statements: executemany holds the GIL between rows, so a long one would stall the loop
                for start in range(0, len(rows), CHUNK_ROWS):
                    await db.executemany(SQL[op], rows[start:start + CHUNK_ROWS])
            entry = RowsEntry(await digesting)
            for read in batch_reads(batch, last, columns):
                rows_back = await db.execute_fetchall(read.sql, read.params)
                entry.add(read, cast(list[tuple[Any, ...]], rows_back))  # plain tuples: no row factory is set
            entries = event_entries(session_id, audit)
            if entry.blocks:
                entries.append((wall_ns(), session_id, ROWS, "", entry.text()))
            audit_rows = link((self.audit_seq, self.audit_hash), entries)
            if audit_rows:
                await db.executemany(INSERT_AUDIT, audit_rows)
            await db.execute("UPDATE sessions SET writer_backlog = ?, writer_waits = ?, writer_wait_ms = ?, "
                             "rows_committed = rows_committed + ? WHERE id = ?",
                             (self.journal.count, self.waits, self.wait_ms, count, session_id))
            await db.execute("COMMIT")
        except Exception:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise
        return audit_rows

    async def _columns(self) -> dict[str, tuple[str, ...]]:
        """Every table's columns, learnt once per connection (the schema is migrated before a writer opens)."""
        if self._tables is None:
            self._tables = table_columns(cast(list[tuple[str, str]], await self.db.execute_fetchall(COLUMNS_SQL)))
        return self._tables

    def _failure(self, exc: sqlite3.Error) -> None:
        now = monotonic_s()
        self.error = str(exc)
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since >= self.retry_seconds:
            self.failed = StoreError(
                f"cannot write to the database for {now - self._failing_since:.0f} s ({exc}); stopped trading. "
                f"{self.journal.count} rows were not saved; the session resumes from its last saved point "
                "when the database can be written again (run the same command)")


def write_batch(conn: sqlite3.Connection, session_id: int, batch: dict[str, list[tuple[Any, ...]]],
                audit: list[tuple[int, str, str, dict[str, Any]]], head: tuple[int, str]) -> tuple[int, str]:
    """What the writer's commit does, synchronously inside the caller's transaction (a backtest's); returns the
    audit chain's new head."""
    columns = stored_columns(conn)
    appended = appended_tables(batch)
    last = dict(zip(appended, conn.execute(last_rowids_sql(appended)).fetchone(), strict=True)) if appended else {}
    for op in OPS:
        if batch[op]:
            conn.executemany(SQL[op], batch[op])
    written = {table: (columns[table], batch[op]) for op, table in WRITTEN.items() if batch[op]}
    return append_rows(conn, session_id, batch_reads(batch, last, columns), wall_ns(), head, audit, written)


def _identity(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file path names now; None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


# what a table operation's rows are, for people
_LABELS = {"market": "market events", "missed": "missed market events", "decision": "decisions",
           "order": "order rows", "order_event": "order changes", "fill": "fills", "strategy": "strategy rows",
           "venue_state": "venue states", "venue_event": "venue reports", "equity": "equity marks",
           "position": "position rows",
           "mark": "account marks", "state_event": "state events", "risk_state": "risk views",
           "command": "command results", "command_new": "commands", "score": "behaviour scores",
           "behaviour": "behaviour series points", "audit": "audit entries"}


def label(op: str) -> str:
    """A table operation's rows, named for people ("fills", "market events")."""
    return _LABELS.get(op, op)
