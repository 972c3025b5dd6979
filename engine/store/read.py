"""The read side: what `paperdesk status`, `sessions` and `export` show, read while a session writes.

Readers open the database read-only (WAL lets them read a consistent snapshot beside the writer)
and return plain values; formatting is the command line's job.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]  # pandas ships no types and pandas-stubs is not a dependency
    import pyarrow as pa

from engine.clock import wall_ns
from engine.store.commands import pending_commands
from engine.store.database import StoreError, check_database, connect_readonly, writer_running
from engine.store.rows import RowError
from engine.store.sessions import RUNNING

EXPORTS: dict[str, tuple[str, str]] = {
    "fills": ("fills", "ts, fill_id"),
    "orders": ("orders", "created_ns, client_id"),
    "decisions": ("decisions", "seq"),
    "equity": ("equity", "ts"),
    "market_data": ("market_data", "seq"),
}


P = ParamSpec("P")
R = TypeVar("R")
# what SQLite and the decoders raise on a damaged page or cell that quick_check cannot see (a flipped byte in text)
_DAMAGE = (sqlite3.DatabaseError, UnicodeDecodeError, json.JSONDecodeError, RowError)


def reads_store(command: Callable[Concatenate[Path, P], R]) -> Callable[Concatenate[Path, P], R]:
    """For a command reading the database given first: damage met while reading becomes one message naming the
    file (never a traceback), including damage quick_check cannot see, such as a changed byte inside a row."""
    @functools.wraps(command)
    def reading(path: Path, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(path, *args, **kwargs)
        except _DAMAGE as exc:
            raise unreadable(path, exc) from None
    return reading


def unreadable(path: Path, exc: BaseException) -> StoreError:
    """The message for a database that failed while being read: damaged, or (busy, I/O) not readable now."""
    name = getattr(exc, "sqlite_errorname", "")
    if name in ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_NOMEM"):
        return StoreError(f"{path}: cannot read it now ({exc}). Nothing was changed; try again")
    return StoreError(f"{path}: the database is damaged ({exc}). Nothing was changed; what was shown before this "
                      "line may be incomplete. Restore a copy, or check it with: paperdesk audit verify --db "
                      f"{path}")


def open_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to an existing paperdesk database; StoreError names what is wrong.

    Runs SQLite's quick_check first (every page; about half a second per 400 MB), so a damaged file is named
    before anything is read from it. Operator commands skip it: an emergency stop must not wait on a scan.
    """
    if not path.exists():
        raise StoreError(f"{path}: no such database (a session creates it: paperdesk run --db {path})")
    version = check_database(path)
    if version == 0:
        raise StoreError(f"{path}: no sessions yet (paperdesk run --db {path} starts one)")
    try:
        return connect_readonly(path)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open it read-only ({exc})") from None


def pick_session(conn: sqlite3.Connection, session_id: int | None) -> int:
    """session_id if it exists, else the latest session; StoreError if there is none."""
    if session_id is None:
        row = conn.execute("SELECT MAX(id) FROM sessions").fetchone()
        if row[0] is None:
            raise StoreError("the database has no sessions yet")
        return row[0]
    if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
        known = [str(r[0]) for r in conn.execute("SELECT id FROM sessions ORDER BY id")]
        raise StoreError(f"--session {session_id}: no such session; sessions are {', '.join(known) or 'none'}")
    return session_id


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur]


INTERRUPTED = "INTERRUPTED"  # stored as RUNNING, but no writer holds the database: crashed or killed


def session_state(stored: str, writer: bool) -> tuple[bool, str]:
    """(running, the word for it) of a session whose row says `stored`, given whether a writer holds the database:
    RUNNING with no writer is INTERRUPTED (the row cannot say so itself after a kill -9). `status` and `sessions`
    both use it, so they name one fact with one word."""
    running = writer and stored == RUNNING
    return running, (INTERRUPTED if stored == RUNNING and not running else stored)


def sessions(conn: sqlite3.Connection, path: Path | None = None) -> list[dict[str, Any]]:
    """Every session, oldest first, with its P&L as of its last equity mark.

    `status` is the stored status, except that with path given a RUNNING session no writer holds is INTERRUPTED
    (`stored_status` keeps what the row says; `running` whether a paperdesk is writing it now).
    """
    out = _rows(conn, "SELECT id, status, started_wall_ns, ended_wall_ns, stop_reason, restarts, config_hash, "
                      "starting_cash, equity, market_ts FROM sessions ORDER BY id")
    writer = path is not None and writer_running(path)
    for row in out:
        row["pnl"] = None if row["equity"] is None else row["equity"] - row["starting_cash"]
        if path is not None:
            row["stored_status"] = row["status"]
            row["running"], row["status"] = session_state(row["status"], writer)
    return out


def status(conn: sqlite3.Connection, path: Path, session_id: int | None = None, n_fills: int = 10) -> dict[str, Any]:
    """The latest (or given) session as an operator needs it: state, equity, positions, open orders, fills."""
    sid = pick_session(conn, session_id)
    session = _rows(conn, "SELECT * FROM sessions WHERE id = ?", (sid,))[0]
    session.pop("config_json")
    running, word = session_state(session["status"], writer_running(path))
    heartbeat = session["heartbeat_wall_ns"]
    return {
        "session": session,
        "running": running,
        "state": ("interrupted (crashed or killed; `paperdesk run` resumes it)" if word == INTERRUPTED else
                  word.lower()),
        "saved_seconds_ago": None if heartbeat is None else round((wall_ns() - heartbeat) / 1e9, 3),
        "positions": _rows(conn, "SELECT symbol, qty, avg_price, mark, unrealised, realised FROM positions "
                                 "WHERE session_id = ? AND qty != 0 ORDER BY symbol", (sid,)),
        "open_orders": _rows(conn, "SELECT client_id, strategy, symbol, side, type, qty, price, stop_price, tif, "
                                   "status, filled_qty FROM orders WHERE session_id = ? AND status IN "
                                   "('SUBMITTED', 'ACCEPTED', 'TRIGGERED', 'PENDING_CANCEL', 'PARTIALLY_FILLED') "
                                   "ORDER BY created_ns", (sid,)),
        "last_fills": _rows(conn, "SELECT fill_id, strategy, symbol, side, qty, price, fee, ts, slippage_bps "
                                  "FROM fills WHERE session_id = ? ORDER BY ts DESC, fill_id DESC LIMIT ?",
                            (sid, n_fills)),
        "strategies": _rows(conn, "SELECT name, kind, status, error FROM strategies WHERE session_id = ? ORDER BY name",
                            (sid,)),
        "counts": _rows(conn, "SELECT (SELECT COUNT(*) FROM orders WHERE session_id = :s) AS orders, "
                              "(SELECT COUNT(*) FROM fills WHERE session_id = :s) AS fills, "
                              "(SELECT COUNT(*) FROM decisions WHERE session_id = :s) AS decisions, "
                              "(SELECT COUNT(*) FROM market_data WHERE session_id = :s) AS market_events",
                        {"s": sid})[0],
        "events": _rows(conn, "SELECT wall_ns, market_ts, scope, kind, detail FROM state_events WHERE session_id = ? "
                              "ORDER BY id DESC LIMIT 5", (sid,)),
        **_risk(conn, sid),
        "behaviour": behaviour_scores(conn, sid, 20),
    }


def behaviour_scores(conn: sqlite3.Connection, sid: int, limit: int | None = None) -> list[dict[str, Any]]:
    """The live behaviour scores, oldest first (the last `limit` of them); empty before schema 3."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'behaviour_scores'").fetchone() is None:
        return []
    rows = _rows(conn, "SELECT wall_ns, market_ts, market_seq, score, summary FROM behaviour_scores "
                       "WHERE session_id = ? ORDER BY wall_ns DESC LIMIT ?", (sid, -1 if limit is None else limit))
    for row in rows:
        row["summary"] = json.loads(row["summary"])
    return rows[::-1]


SERIES_COLUMNS = ("market_ts", "score", "signal_agreement", "timing", "count_ratio", "matched_share", "unexplained")


def behaviour_history(db: Path | sqlite3.Connection, session_id: int, strategy: str | None = None,
                      limit: int | None = None) -> list[dict[str, Any]]:
    """The live behaviour score over time, oldest first (the console's sparkline): the whole portfolio's, or one
    strategy's, the last `limit` points of it. Each point: market_ts, score (None while there was nothing to score),
    its four components and how many differences were unexplained. Empty for a database older than schema 6 (opened
    read-only, never checked: it is polled)."""
    if isinstance(db, sqlite3.Connection):
        return _history(db, session_id, strategy, limit)
    if not db.exists():
        raise StoreError(f"{db}: no such database (a session creates it: paperdesk run --db {db})")
    conn = connect_readonly(db)
    try:
        return _history(conn, session_id, strategy, limit)
    finally:
        conn.close()


def _history(conn: sqlite3.Connection, session_id: int, strategy: str | None,
             limit: int | None) -> list[dict[str, Any]]:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'behaviour_series'").fetchone() is None:
        return []
    return _rows(conn, f"SELECT {', '.join(SERIES_COLUMNS)} FROM behaviour_series WHERE session_id = ? AND "
                       "strategy IS ? ORDER BY market_ts DESC, id DESC LIMIT ?",
                 (session_id, strategy, -1 if limit is None else limit))[::-1]


def _risk(conn: sqlite3.Connection, sid: int) -> dict[str, Any]:
    """Trading state, breaker gauges, the venue's health as last saved, and operator commands (absent from a
    database older than schema 2)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'risk_state'").fetchone() is None:
        return {"risk": None, "venue": None, "pending_commands": [], "commands": []}
    row = conn.execute("SELECT market_ts, view, wall_ns FROM risk_state WHERE session_id = ?", (sid,)).fetchone()
    risk = venue = None
    if row is not None:
        risk = json.loads(row[1])
        risk["market_ts"] = row[0]
        venue = risk.pop("venue", None)
        if venue is not None:
            venue["measured_seconds_ago"] = round((wall_ns() - row[2]) / 1e9, 3)
    return {
        "risk": risk,
        "venue": venue,
        "pending_commands": pending_commands(conn, sid),
        "commands": _rows(conn, "SELECT id, wall_ns, command, args, reason, source, handled_wall_ns, ok, result "
                                "FROM commands WHERE session_id = ? AND handled_wall_ns IS NOT NULL "
                                "ORDER BY id DESC LIMIT 5", (sid,)),
    }


def export_chunks(conn: sqlite3.Connection, what: str, session_id: int,
                  chunksize: int = 50_000) -> Iterator[pd.DataFrame]:
    """The session's rows of one table, in order, as DataFrames of at most chunksize rows (at least one frame)."""
    import pandas as pd  # here, not at the top: `status` and the operator commands should start fast

    table, order = EXPORTS[what]
    declared = {name: kind.upper() for _, name, kind, *_ in conn.execute(f"PRAGMA table_info({table})")}
    cursor = conn.execute(f"SELECT * FROM {table} WHERE session_id = ? ORDER BY {order}", (session_id,))
    columns = [d[0] for d in cursor.description]
    empty = True
    while rows := cursor.fetchmany(chunksize):
        empty = False
        # a nanosecond time in a column with gaps (end_ts: bars only) must stay a whole number, not become a float
        yield pd.DataFrame({name: pd.array(list(values), dtype="Int64") if declared.get(name) == "INTEGER"
                            else list(values) for name, values in zip(columns, zip(*rows, strict=True), strict=True)})
    if empty:
        yield pd.DataFrame(columns=columns)


def parquet_schema(conn: sqlite3.Connection, what: str) -> pa.Schema:
    """The exported table's columns as Arrow types, from the types the schema declares."""
    import pyarrow as pa

    types = {"INTEGER": pa.int64(), "REAL": pa.float64(), "TEXT": pa.string()}
    table = EXPORTS[what][0]
    return pa.schema([(name, types.get(declared.upper(), pa.string()))
                      for _, name, declared, *_ in conn.execute(f"PRAGMA table_info({table})")])
