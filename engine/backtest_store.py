"""A backtest saved as a session of a paperdesk database, so `report`, `status`, `export` and `validate` read it as
they read a paper session.

The rows are the paper session's (engine/store/journal.py through the writer's statements), written synchronously
in one transaction: the database holds the whole run or, if it fails or is stopped, nothing of it. The session is
saved ENDED (a backtest cannot be resumed, and `paperdesk run` must never pick it up), its venue is "backtest" and
its state events and venue line say what data it replayed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from engine.clock import SimClock, wall_ns
from engine.config import AppConfig
from engine.core import Engine
from engine.model.market import Bar, MarketEvent
from engine.snapshot import VenueHealth
from engine.store.audit import chain_head
from engine.store.database import StoreError, WriterLock, check_database, configure, migrate
from engine.store.journal import StoreJournal
from engine.store.sessions import ENDED, config_hash, config_text, insert_session
from engine.store.writer import write_batch

VENUE = "backtest"  # the sessions.venue of a backtest: a paper session's is its config's venue kind
FLUSH_ROWS = 50_000  # journal rows held in memory before they go into the open transaction


class BacktestJournal(StoreJournal):
    """The paper session's journal, whose marks during the run keep the equity point only: positions, the account
    and the risk view are kept as their latest row, so they are written once, at the end."""

    def equity_point(self, engine: Engine, ts: int) -> None:
        account = engine.account
        self._add("equity", (self.session_id, ts, account.equity(), account.cash, account.realised_pnl(),
                             account.unrealised_pnl(), account.fees_paid))


class BacktestStore:
    """Open (lock, migrate, start the transaction and the session row), replay, then finish (commit) or abort."""

    def __init__(self, path: Path, config: AppConfig, data: str, market_start_ns: int) -> None:
        self.path = path
        self.config = config
        self.data = data
        self.market_start_ns = market_start_ns
        self.text = config_text(config)  # the config as the session stores it
        self.session_id = 0
        self.journal: BacktestJournal | None = None
        self._created = not path.exists()
        self._lock = WriterLock(path)
        self._conn: sqlite3.Connection | None = None
        self._audit: tuple[int, str] = (0, "")
        self._rows = 0
        self._last_ts = market_start_ns

    def __enter__(self) -> BacktestStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._conn is not None:
            self.abort()

    def open(self, engine: Engine) -> int:
        """Start the session (in the open transaction) and attach its journal to engine; returns the session id."""
        check_database(self.path)
        self._lock.acquire()
        try:
            migrate(self.path)
            conn = self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
            configure(conn)
            conn.execute("BEGIN IMMEDIATE")
            self.session_id = self._insert_session(conn)
            self._audit = chain_head(conn)
        except sqlite3.Error as exc:
            self.abort()
            raise StoreError(f"{self.path}: cannot save the backtest there ({exc})") from None
        except BaseException:
            self.abort()
            raise
        assert isinstance(engine.clock, SimClock)
        journal = self.journal = BacktestJournal(self.session_id, engine.clock)
        latency = self.config.venue.latency_ms
        journal.venue_view = lambda: VenueHealth(f"backtest of {self.data}", True, False, "", {}, latency).to_json()
        engine.journal = journal
        for strategy in engine.strategies.values():
            journal.strategy(strategy)
        journal.state_event("session", "STARTED", f"backtest of {self.data}, config {config_hash(self.text)[:12]}",
                            self.market_start_ns)
        return self.session_id

    def _insert_session(self, conn: sqlite3.Connection) -> int:
        return insert_session(conn, self.config, self.text, ENDED, VENUE, self.market_start_ns)

    def replay(self, engine: Engine, events: Iterable[MarketEvent], mark_every_ns: int,
               step: Callable[[int], None] | None = None) -> int:
        """engine.replay's loop, with the session's equity points every mark_every_ns of market time (and at each
        bar's close into the engine's own curve, as a backtest without a database keeps it) and rows flushed into
        the transaction as they pile up; step(count) after each event, if given."""
        journal = self.journal
        assert journal is not None and isinstance(engine.clock, SimClock)
        advance, process, mark = engine.clock.catch_up, engine.process, engine.mark_equity
        next_mark = self.market_start_ns
        count = 0
        ts = self.market_start_ns
        for event in events:
            is_bar = type(event) is Bar
            ts = event.end if is_bar else event.ts  # type: ignore[union-attr]
            advance(ts)
            process(event)
            count += 1
            if is_bar:
                mark(ts)
            if ts >= next_mark:
                journal.equity_point(engine, ts)
                next_mark = ts + mark_every_ns
            if journal.count >= FLUSH_ROWS:
                self._flush()
            if step is not None:
                step(count)
        self._last_ts = max(ts, self._last_ts)
        return count

    def finish(self, engine: Engine, count: int) -> None:
        """The last mark (equity, positions, account, risk view) and the session's end, then commit: from here on the
        backtest is in the database."""
        journal, conn = self.journal, self._conn
        assert journal is not None and conn is not None
        ts = self._last_ts
        journal.mark(engine, ts)
        reason = f"backtest of {self.data}: finished, {count} market events"
        journal.state_event("session", "STOPPED", reason, ts)
        try:
            self._flush()
            conn.execute("UPDATE sessions SET ended_wall_ns = ?, stop_reason = ? WHERE id = ?",
                         (wall_ns(), reason, self.session_id))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.abort()
            raise StoreError(f"{self.path}: cannot save the backtest there ({exc}); nothing of it was saved") from None
        conn.close()
        self._conn = None
        self._lock.release()

    def abort(self) -> None:
        """Roll back: nothing of the run stays; a database this run created is removed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # closing without a commit rolls back as well
            conn.close()
        if self._created:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self._lock.release()

    def _flush(self) -> None:
        journal, conn = self.journal, self._conn
        assert journal is not None and conn is not None
        batch, audit, count = journal.take()
        self._audit = write_batch(conn, self.session_id, batch, audit, self._audit)
        self._rows += count
        conn.execute("UPDATE sessions SET rows_committed = ? WHERE id = ?", (self._rows, self.session_id))
