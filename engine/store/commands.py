"""Operator commands through the database: another shell queues them, the running engine applies them.

A command row is written by `paperdesk halt|pause|resume|emergency-stop|phase` or an attached console
(`paperdesk console`), and picked up by the session's poller within a quarter second; the engine records
when and after which market event it applied it, and with what result. On a restart recovery re-applies
each command after the same market event, so the replay reaches the same state; a command queued while
nothing runs applies when the session resumes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.clock import wall_ns
from engine.store.database import StoreError, check_database, configure, connect_readonly
from engine.store.sessions import ENDED

POLL_SECONDS = 0.25
COMMANDS_SCHEMA = 2  # the schema that added what commands need (their market point, ok)


@dataclass(frozen=True, slots=True)
class Command:
    id: int
    session_id: int
    command: str
    args: dict[str, Any]
    reason: str
    source: str


@dataclass(frozen=True, slots=True)
class CommandResult:
    handled: bool
    ok: bool | None
    result: str | None
    market_ts: int | None


def command_source() -> str:
    """Who sent it, for the audit: user, host and process."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or str(os.getuid())
    return f"cli {user}@{os.uname().nodename} pid {os.getpid()}"


class BadCommand(StoreError):
    """A command the session cannot apply whatever its state (no such strategy or risk phase): nothing is queued."""


class CommandRefused(Exception):
    """A command the session's trading state refuses (halt during an emergency stop, ...): nothing is queued."""


EMERGENCY_STOPPED = "EMERGENCY_STOPPED"  # engine.breakers.trading_state.TradingState's value, as the store keeps it
# engine.model.order.OrderStatus's values an order never leaves
FINAL_ORDER_STATUSES = ("FILLED", "CANCELED", "REJECTED", "EXPIRED", "DENIED")


def check_command(conn: sqlite3.Connection, session_id: int, command: str, args: dict[str, Any],
                  reason: str) -> None:
    """Refuse before queueing what the engine would refuse anyway, from what the database knows.

    The strategies and risk phases come from the session's stored config (the one it runs with; a config
    this paperdesk cannot read is left to the engine to judge). The emergency stop is the stored portfolio
    state, carried through the commands still queued ahead of this one: halt and pause never replace it, and
    the portfolio's resume out of it needs a reason. Raises BadCommand or CommandRefused.
    """
    from engine.config import ConfigError, parse_config  # the engine side of this module never needs it

    row = conn.execute("SELECT config_json FROM sessions WHERE id = ?", (session_id,)).fetchone()
    try:
        config = parse_config(json.loads(row[0]), f"session {session_id}'s stored config", stored=True)
    except (ConfigError, ValueError, TypeError):
        config = None
    strategy = args.get("strategy")
    if config is not None:
        names = [s.name for s in config.strategies]
        if strategy is not None and strategy not in names:
            raise BadCommand(f"--strategy {strategy}: session {session_id} has no strategy by that name "
                             f"(its strategies: {', '.join(names) or 'none'}). Nothing was queued")
        if command == "flatten":
            symbols = [i.symbol for i in config.instruments]
            if args.get("symbol") not in symbols:
                raise BadCommand(f"symbol {args.get('symbol')}: session {session_id} does not trade it (its "
                                 f"instruments: {', '.join(symbols)}). Nothing was queued")
        if command == "phase":
            phases = sorted(p.phase for p in config.phases)
            if args.get("phase") not in phases:
                defined = ", ".join(map(str, phases)) if phases else "none ([[phases]] in its config defines them)"
                raise BadCommand(f"--to {args.get('phase')}: session {session_id} has no such risk phase (defined: "
                                 f"{defined}). Nothing was queued")
    if command == "cancel":
        _check_cancel(conn, session_id, args.get("order"), strategy)
    halting = command in ("halt", "pause")
    bare_resume = command == "resume" and strategy is None and not reason.strip()
    if (halting or bare_resume) and _emergency_stopped(conn, session_id):
        what = command + (f" --strategy {strategy}" if strategy else "")
        if halting:
            raise CommandRefused(f"session {session_id} is EMERGENCY_STOPPED: {what} would not tighten it (the stop "
                                 "stays latched until `paperdesk resume --reason \"...\"`; resume --reason first). "
                                 "Nothing was queued")
        raise CommandRefused(f"session {session_id} is EMERGENCY_STOPPED: resuming from it needs a reason "
                             "(paperdesk resume --reason \"...\"). Nothing was queued")


def _check_cancel(conn: sqlite3.Connection, session_id: int, order: object, strategy: str | None) -> None:
    """A cancel names an order of the session that is still open, or a strategy (checked with the others)."""
    if order is None:
        if strategy is None:
            raise BadCommand("cancel needs an order id or a strategy. Nothing was queued")
        return
    row = conn.execute("SELECT status FROM orders WHERE session_id = ? AND client_id = ?",
                       (session_id, order)).fetchone()
    if row is None:
        raise BadCommand(f"order {order}: session {session_id} has no order by that id. Nothing was queued")
    if row[0] in FINAL_ORDER_STATUSES:
        raise CommandRefused(f"order {order} is {row[0]}: nothing to cancel. Nothing was queued")


def _emergency_stopped(conn: sqlite3.Connection, session_id: int) -> bool:
    """Whether the portfolio is latched EMERGENCY_STOPPED once the commands queued before this one apply."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'risk_state'").fetchone() is None:
        return False
    row = conn.execute("SELECT state FROM risk_state WHERE session_id = ?", (session_id,)).fetchone()
    stopped = row is not None and row[0] == EMERGENCY_STOPPED
    for command, args, reason in conn.execute("SELECT command, args, reason FROM commands WHERE session_id = ? "
                                              "AND handled_wall_ns IS NULL ORDER BY id", (session_id,)):
        if command == "emergency-stop":
            stopped = True
        elif command == "resume" and (reason or "").strip():
            try:
                scoped = json.loads(args).get("strategy")
            except (ValueError, AttributeError):
                continue
            stopped = stopped and scoped is not None
    return stopped


def queue_command(path: Path, command: str, args: dict[str, Any], reason: str,
                  check: bool = False, source: str | None = None) -> tuple[int, int]:
    """Queue a command for the database's current session; returns (command id, session id).

    check: first refuse (BadCommand, CommandRefused; nothing written) what check_command can tell will fail,
    in the same transaction as the insert, so the session checked is the session commanded. source: who sent it, for
    the audit (default: this shell, command_source()).
    """
    if not path.exists():
        raise StoreError(f"{path}: no such database (paperdesk run --db {path} creates it)")
    version = check_database(path, thorough=False)
    if version < COMMANDS_SCHEMA:
        raise StoreError(f"{path}: written by an older paperdesk (schema {version}); run `paperdesk run --db {path}` "
                         "once to upgrade it, then send the command again")
    conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
    try:
        configure(conn)
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT id FROM sessions WHERE status != ? ORDER BY id DESC LIMIT 1", (ENDED,)).fetchone()
        if row is None:
            conn.execute("ROLLBACK")
            raise StoreError(f"{path}: no session to command (every session has ended; `paperdesk run` starts one)")
        if check:
            try:
                check_command(conn, row[0], command, args, reason)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        cur = conn.execute("INSERT INTO commands (session_id, wall_ns, command, args, reason, source) "
                           "VALUES (?,?,?,?,?,?)", (row[0], wall_ns(), command, json.dumps(args), reason,
                                                    source or command_source()))
        conn.execute("COMMIT")
        assert cur.lastrowid is not None  # every INSERT into a rowid table sets it
        return cur.lastrowid, row[0]
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot queue the command ({exc})") from None
    finally:
        conn.close()


def command_result(path: Path, command_id: int) -> CommandResult:
    conn = connect_readonly(path)
    try:
        row = conn.execute("SELECT handled_wall_ns, ok, result, market_ts FROM commands WHERE id = ?",
                           (command_id,)).fetchone()
    finally:
        conn.close()
    if row is None or row[0] is None:
        return CommandResult(False, None, None, None)
    return CommandResult(True, bool(row[1]), row[2], row[3])


def pending_commands(conn: sqlite3.Connection, session_id: int) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT id, wall_ns, command, args, reason, source FROM commands "
                       "WHERE session_id = ? AND handled_wall_ns IS NULL ORDER BY id", (session_id,))
    return [dict(zip(("id", "wall_ns", "command", "args", "reason", "source"), row, strict=True)) for row in cur]


def applied_commands(conn: sqlite3.Connection, session_id: int) -> list[tuple[int, int, Command]]:
    """(market_seq, market_ts, command) of every command the session applied, in the order it applied them."""
    rows = conn.execute("SELECT market_seq, market_ts, id, command, args, reason, source FROM commands "
                        "WHERE session_id = ? AND handled_wall_ns IS NOT NULL AND market_seq IS NOT NULL "
                        "ORDER BY market_seq, id", (session_id,))
    return [(seq, ts, Command(cid, session_id, command, json.loads(args), reason, source))
            for seq, ts, cid, command, args, reason, source in rows]


class CommandInbox:
    """The engine's side: fetches commands not yet applied (blocking; call it from a worker thread)."""

    def __init__(self, path: Path, session_id: int) -> None:
        self.path = path
        self.session_id = session_id
        self._conn: sqlite3.Connection | None = None
        self._seen = 0
        # a cancelled poll leaves its fetch running in a worker thread: closing the connection under it crashes
        # the process (SQLite frees the statement it is stepping), so close waits for it
        self._using = threading.Lock()

    def fetch(self) -> list[Command]:
        with self._using:
            return self._fetch()

    def _fetch(self) -> list[Command]:
        if self._conn is None:
            # polled from asyncio's worker threads, one call at a time
            self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0,
                                         check_same_thread=False)
        rows = self._conn.execute("SELECT id, command, args, reason, source FROM commands WHERE session_id = ? "
                                  "AND handled_wall_ns IS NULL AND id > ? ORDER BY id", (self.session_id, self._seen))
        out = []
        for cid, command, args, reason, source in rows.fetchall():
            self._seen = cid
            try:
                parsed = json.loads(args)
            except ValueError:
                parsed = {"unreadable": args}
            out.append(Command(cid, self.session_id, command, parsed if isinstance(parsed, dict) else {}, reason,
                               source))
        return out

    def close(self) -> None:
        with self._using:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
