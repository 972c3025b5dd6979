"""`paperdesk console --db desk.sqlite`: the console on a session another process runs (`paperdesk run --no-ui`).

AttachedDesk reads what that process saves (a background thread polls the database twice a second; the console only
ever takes the last snapshot it built) and sends commands through the database's command queue, as `paperdesk halt`
does. Quitting detaches: the session trades on. A session that stops, restarts or is replaced by a new one on the
same database is followed, never crashed on.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from console.headless import stop_signals
from console.store_snapshot import SessionReader, SessionRow, latest_session
from engine.clock import utc_text, wall_ns
from engine.model.event_log import EventLevel
from engine.snapshot import EngineSnapshot
from engine.store.commands import CommandRefused, command_source, queue_command
from engine.store.database import StoreError, connect_readonly, writer_running
from engine.store.read import INTERRUPTED, open_reader, pick_session, reads_store, session_state
from engine.store.sessions import ENDED

if TYPE_CHECKING:
    from console.cli import StopSignals
    from engine.config import AppConfig, ConsoleConfig

POLL_SECONDS = 0.5


class AttachedDesk:
    """A session another process runs on db_path: the latest session, or session_id for that one only."""

    attached = True

    def __init__(self, db_path: Path, session_id: int | None = None, poll_seconds: float = POLL_SECONDS) -> None:
        self._path = db_path
        self._pinned = session_id
        self._poll_seconds = poll_seconds
        self._reader: SessionReader | None = None
        self._row: SessionRow | None = None
        self._snapshot: EngineSnapshot | None = None
        self._running = False
        self._current: int | None = None  # the session a queued command goes to (the latest not ended)
        self._error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def db_path(self) -> Path:
        return self._path

    @property
    def session_id(self) -> int | None:
        return None if self._reader is None else self._reader.session_id

    @property
    def running(self) -> bool:
        """Whether a paperdesk process is running this session now (as of the last poll)."""
        return self._running

    def snapshot(self) -> EngineSnapshot:
        assert self._snapshot is not None, "attach() polls once before the desk is handed out"
        return self._snapshot

    def link(self) -> str | None:
        row = self._row
        heartbeat = None if row is None else row.heartbeat_wall_ns
        if self._running:
            text = "ATTACHED" + ("" if heartbeat is None else f" {max(0, wall_ns() - heartbeat) / 1e9:.1f} s")
        else:
            saved = "never" if heartbeat is None else utc_text(heartbeat)
            text = f"NOT RUNNING: last saved {saved}, read-only"
        return text + (f" (cannot read the database: {self._error})" if self._error else "")

    def confirm_first(self, command: str) -> str | None:
        if self._running or self.session_id != self._current:
            return None  # running: it applies at once; an ended session: command() refuses it
        return f"no session is running on {self._path}: queue {command} for when it resumes?"

    def command(self, command: str, args: dict[str, Any], reason: str, source: str) -> tuple[bool, str]:
        """Queue the command for the session (it writes one row: call it off the event loop); the engine's answer
        comes back as a `command N ...` line in the event log."""
        sid = self.session_id
        if sid != self._current:
            now = (f"session {self._current} is the database's current one" if self._current is not None
                   else "no session is running or resumable")
            return False, f"session {sid} has ended ({now}): nothing was queued"
        # not the console's own name: the app toasts the engine's answer to a command it did not apply itself
        sender = f"{source}, attached from {command_source().removeprefix('cli ')}"
        try:
            command_id, queued_for = queue_command(self._path, command, args, reason, check=True, source=sender)
        except (StoreError, CommandRefused) as exc:
            return False, str(exc)
        if not writer_running(self._path):
            return True, (f"queued (command {command_id}); applies when session {queued_for} resumes "
                          f"(paperdesk run --db {self._path})")
        return True, f"queued (command {command_id}); applies within a second"

    def stop(self, reason: str) -> None:
        """Detach: stop reading; the session keeps trading."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def start(self) -> None:
        """Poll in the background from now on."""
        self._thread = threading.Thread(target=self._watch, name="paperdesk-attach", daemon=True)
        self._thread.start()

    def poll(self) -> None:
        """Read the database once: which session to show, whether it runs, and its snapshot."""
        running = writer_running(self._path)
        conn = connect_readonly(self._path)  # a new one each time: a file no session wrote is opened immutable
        try:
            self._poll(conn, running)
        finally:
            conn.close()

    def _poll(self, conn: sqlite3.Connection, writer: bool) -> None:
        current = conn.execute("SELECT id FROM sessions WHERE status != ? ORDER BY id DESC LIMIT 1",
                               (ENDED,)).fetchone()
        sid = self._pinned if self._pinned is not None else latest_session(conn)
        assert sid is not None, "attach() refuses a database with no session"
        reader = self._reader
        if reader is None or reader.session_id != sid:
            before = reader
            reader = SessionReader(sid, first_seq=0 if before is None else before.seq)
            if before is not None:
                reader.note(self._row.market_ts if self._row is not None else 0, EventLevel.WARN,
                            f"session {sid} started on {self._path}: now showing it (session {before.session_id} "
                            "ended)")
        row, snapshot = reader.poll(conn)
        running, word = session_state(row.status, writer)
        if self._running and not running and word == INTERRUPTED and reader is self._reader:
            # killed: no STOPPED line comes from the session; this one shows in the next poll's snapshot
            reader.note(row.market_ts, EventLevel.ERROR, f"session {sid}: no process runs it any more (crashed or "
                        f"killed); shown read-only until `paperdesk run --db {self._path}` resumes it")
        self._reader, self._row, self._snapshot = reader, row, snapshot
        self._current = None if current is None else current[0]
        self._running = running

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll()
                self._error = ""
            except (sqlite3.Error, StoreError, OSError, ValueError) as exc:  # kept trying: a busy or replaced file
                self._error = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # anything else must not end the watch unseen: the header says it, polls go on
                self._error = f"{type(exc).__name__}: {exc} (a paperdesk bug: please report it)"


@reads_store
def attach(db_path: Path, session_id: int | None = None, poll_seconds: float = POLL_SECONDS) -> AttachedDesk:
    """An AttachedDesk polling db_path, or StoreError with the message `paperdesk status` gives for the same file
    (not a paperdesk database, a newer one, damaged, no session)."""
    conn = open_reader(db_path)
    try:
        if latest_session(conn) is None:
            raise StoreError(f"{db_path}: no sessions yet (paperdesk run --db {db_path} starts one)")
        pick_session(conn, session_id)
    finally:
        conn.close()
    desk = AttachedDesk(db_path, session_id, poll_seconds)
    desk.poll()
    desk.start()
    return desk



def stored_config(db_path: Path, session_id: int) -> AppConfig | None:
    """The config the session runs with, as it stored it (its [console] keys and theme, venue, score threshold for
    the attached console); None when this paperdesk cannot read it (the console's defaults then)."""
    from engine.config import ConfigError, parse_config

    conn = connect_readonly(db_path)
    try:
        row = conn.execute("SELECT config_json FROM sessions WHERE id = ?", (session_id,)).fetchone()
    finally:
        conn.close()
    try:
        return parse_config(json.loads(row[0]), f"session {session_id}'s stored config", stored=True)
    except (ConfigError, ValueError, TypeError):
        return None


async def run_attached(desk: AttachedDesk, signals: StopSignals | None = None, theme: str | None = None,
                       settings: ConsoleConfig | None = None) -> int:
    """The console on the desk until q, SIGINT, SIGTERM or SIGHUP (a dropped SSH session): each only detaches.
    theme: a name console.app.check_theme accepted; settings: the operator's [console] (keys, theme, bell), from
    their config file (a session's stored config never has one)."""
    from console.app import PaperdeskApp

    assert desk.session_id is not None, "attach() polls once before the desk is handed out"
    app = PaperdeskApp(desk, stored_config(desk.db_path, desk.session_id), theme, settings)
    try:
        with stop_signals(signals, lambda _sig: app.exit(0)):
            await app.run_async()
    finally:
        desk.stop("detached")
    return app.return_code or 0
