"""Session bookkeeping: start a session, find the one to resume, refuse a resume that would guess.

A session stays resumable until a new one replaces it (`paperdesk run --new-session`): a crash,
kill -9, Ctrl-C or a reboot all leave it to be picked up by the next `paperdesk run`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.clock import wall_ns
from engine.config import AppConfig, parse_config
from engine.store.audit import append_rows, chain_head, session_reads, stored_columns
from engine.store.database import StoreError, WriterLock, check_database, configure, migrate
from engine.store.rows import canonical_json

RUNNING, STOPPED, ENDED = "RUNNING", "STOPPED", "ENDED"


# what a real venue's market list fills into a config when a session opens (engine/venues.py GRID_KEYS and fees)
_LISTED = re.compile(r"^instruments\[\d+\]\.(tick_size|lot_size|min_qty|min_notional|maker_fee|taker_fee): ")


def config_text(config: AppConfig) -> str:
    """The config as the session stores it; [store] and [console] are left out, they do not change what trades."""
    return canonical_json(config.model_dump(mode="json", exclude={"store", "console"}))


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def same_config(stored: str, given: str) -> bool:
    """Whether a stored config is the given one once settings added since it was stored take their defaults."""
    try:
        return config_text(parse_config(json.loads(stored), stored=True)) == given
    except ValueError:  # ConfigError included: a config this version cannot read is not the same
        return False


def config_differences(stored: str, given: str, limit: int = 5) -> list[str]:
    """'venue.seed: 7 -> 8' for each leaf that differs, at most limit of them."""
    a, b = _flatten(json.loads(stored)), _flatten(json.loads(given))
    keys = sorted(set(a) | set(b))
    out = [f"{k}: {a.get(k, '(absent)')!r} -> {b.get(k, '(absent)')!r}" for k in keys
           if repr(a.get(k)) != repr(b.get(k))]  # repr: 10.0 -> 10 is a difference the hash saw
    return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: int
    market_start_ns: int
    config_hash: str
    restarts: int


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """What open_session decided: the session to trade, whether it is resumed, and the audit chain's head.

    A resumed session is not written to yet: its record carries the restart number it takes once
    recovery succeeds and mark_resumed() records it.
    """

    record: SessionRecord
    resumed: bool
    audit_head: tuple[int, str]
    ended_previous: int | None = None


def open_session(path: Path, lock: WriterLock, config: AppConfig, new_session: bool,
                 market_start_ns: int) -> OpenedSession:
    """Check, lock and migrate the database, then pick its latest session to resume or start one (blocking I/O).

    Picking a session to resume writes nothing; call mark_resumed() once it has been recovered.
    """
    check_database(path)
    lock.acquire()
    try:
        migrate(path)
        conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
        try:
            configure(conn)
            return _open(conn, path, config, new_session, market_start_ns)
        finally:
            conn.close()
    except BaseException:
        lock.release()
        raise


def insert_session(conn: sqlite3.Connection, config: AppConfig, text: str, status: str, venue: str,
                   market_start_ns: int) -> int:
    """A session's row and its instruments' rows, chained in the audit (inside the caller's transaction); returns
    the session id."""
    cur = conn.execute(
        "INSERT INTO sessions (status, started_wall_ns, market_start_ns, venue, config_json, config_hash, "
        "starting_cash, pid) VALUES (?,?,?,?,?,?,?,?)",
        (status, wall_ns(), market_start_ns, venue, text, config_hash(text), config.session.starting_cash,
         os.getpid()))
    session_id = cur.lastrowid
    assert session_id is not None  # every INSERT into a rowid table sets it
    for i in config.instruments:
        base, quote = i.symbol.split("/")
        conn.execute("INSERT INTO instruments VALUES (?,?,?,?,?,?,?,?,?,?)",
                     (session_id, i.symbol, base, quote, i.tick_size, i.lot_size, i.min_qty, i.min_notional,
                      i.maker_fee, i.taker_fee))
    append_rows(conn, session_id, session_reads(session_id, stored_columns(conn)), wall_ns())
    return session_id


def mark_resumed(path: Path, record: SessionRecord) -> None:
    """Record a recovered session as running again: RUNNING, this process, restarts counted, its end cleared.

    One short transaction, under the writer lock open_session took (blocking I/O).
    """
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot resume session {record.id} ({exc})") from None
    try:
        configure(conn)
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute("UPDATE sessions SET status = ?, restarts = ?, pid = ?, ended_wall_ns = NULL, "
                           "stop_reason = NULL WHERE id = ? AND restarts = ? AND status != ?",
                           (RUNNING, record.restarts, os.getpid(), record.id, record.restarts - 1, ENDED))
        if cur.rowcount != 1:  # the lock keeps other writers out; this would be a bug, or a hand edit
            conn.execute("ROLLBACK")
            raise StoreError(f"{path}: session {record.id} changed while it was being recovered; "
                             "refusing to trade")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"{path}: cannot resume session {record.id} ({exc})") from None
    finally:
        conn.close()


def _open(conn: sqlite3.Connection, path: Path, config: AppConfig, new_session: bool,
          market_start_ns: int) -> OpenedSession:
    text = config_text(config)
    digest = config_hash(text)
    latest = conn.execute("SELECT id, market_start_ns, config_hash, restarts, config_json "
                          "FROM sessions WHERE status != ? ORDER BY id DESC LIMIT 1", (ENDED,)).fetchone()
    if latest is not None and not new_session:
        # decided read-only: the session is written to only once recovery has rebuilt it (mark_resumed)
        if latest[2] != digest and not same_config(latest[4], text):
            every = config_differences(latest[4], text, limit=1000)
            diffs = "; ".join(config_differences(latest[4], text))
            if config.venue.kind != "simulated" and every and all(_LISTED.match(d) for d in every):
                # the config is the user's, but these values are the exchange's, filled in when the session opened
                raise StoreError(
                    f"{path}: session {latest[0]} is unfinished, and {config.venue.exchange} now lists other rules "
                    f"for its instruments than when it ran ({diffs}). Resuming it would trade under rules it did "
                    "not; pass --new-session to end it and start a new one under today's rules")
            raise StoreError(
                f"{path}: session {latest[0]} is unfinished and ran with another config ({diffs}). "
                "Resuming it with a different config would guess; run with the config it started with, "
                "or pass --new-session to end it and start a new one")
        record = SessionRecord(latest[0], latest[1], latest[2], latest[3] + 1)
        return OpenedSession(record, True, chain_head(conn))
    ended = None
    try:
        conn.execute("BEGIN IMMEDIATE")
        if latest is not None:
            ended = latest[0]
            conn.execute("UPDATE sessions SET status = ?, ended_wall_ns = COALESCE(ended_wall_ns, ?), "
                         "stop_reason = COALESCE(stop_reason || '; ', '') || 'ended by --new-session' WHERE id = ?",
                         (ENDED, wall_ns(), latest[0]))
        session_id = insert_session(conn, config, text, RUNNING, config.venue.kind, market_start_ns)
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"{path}: cannot start a session ({exc})") from None
    record = SessionRecord(session_id, market_start_ns, digest, 0)
    return OpenedSession(record, False, chain_head(conn), ended)
