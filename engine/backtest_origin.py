"""Which paper session a recording or a market data file is of, and so the config it ran with.

A recording's header may name its session (engine/data/recording.py RecordingOrigin). Otherwise the session is
found in a database by its market data: the session whose stored events include the file's first events, in
order. Where they start in the session says whether the file holds all of it or only its tail.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.data.recording import RecordingOrigin
from engine.model.market import MarketEvent
from engine.store.database import check_database, connect_readonly
from engine.store.read import unreadable
from engine.store.rows import MARKET_COLUMNS, RowError, market_event, market_row

CANDIDATES = 20  # stored events like the first one, tried in turn (a quiet market repeats a book)


@dataclass(frozen=True, slots=True)
class SessionOrigin:
    """A session whose market data a file holds from its first_seq-th event on, after events_before traded ones."""

    database: Path
    session_id: int
    config_json: str
    first_seq: int
    events_before: int  # the session's market events before first_seq that are not warm-up bars (never recorded)
    restarts: int
    found_by: str  # how it was found, for messages
    restarts_known: bool = True  # restarts is the session's count when the file began (a header's), not today's

    @property
    def tail_only(self) -> bool:
        return self.events_before > 0

    @property
    def name(self) -> str:
        return f"session {self.session_id} of {self.database}"


def from_header(origin: RecordingOrigin) -> SessionOrigin:
    return SessionOrigin(Path(origin.database), origin.session_id, origin.config_json, origin.first_seq,
                         origin.events_before, origin.restarts, "named by the recording's header")


def find_in_database(db: Path, first: Sequence[MarketEvent], session_id: int | None = None) -> SessionOrigin | None:
    """The latest session of db (or session_id) whose market data holds the events `first` in a row; None if none.

    A file that is not a paperdesk database raises StoreError; a missing one is no match."""
    if not first or not db.is_file() or check_database(db, thorough=False) == 0:
        return None
    conn = connect_readonly(db)
    try:
        sessions = conn.execute("SELECT id, config_json, restarts FROM sessions"
                                + (" WHERE id = ?" if session_id is not None else "") + " ORDER BY id DESC",
                                () if session_id is None else (session_id,)).fetchall()
        for sid, config_json, restarts in sessions:
            seq = _start(conn, sid, first)
            if seq is not None:
                before, = conn.execute("SELECT COUNT(*) FROM market_data WHERE session_id = ? AND seq < ? AND "
                                       "kind != 'warmup'", (sid, seq)).fetchone()
                return SessionOrigin(db, sid, config_json, seq, before, restarts, "found by its market data", False)
        return None
    except (sqlite3.Error, RowError) as exc:
        raise unreadable(db, exc) from None
    finally:
        conn.close()


def _start(conn: sqlite3.Connection, sid: int, first: Sequence[MarketEvent]) -> int | None:
    """The seq in session sid where the events `first` begin, if they are there."""
    row = market_row(sid, 0, first[0])
    ts, symbol, kind = row[2], row[3], row[4]
    candidates = [seq for seq, in conn.execute(
        "SELECT seq FROM market_data WHERE session_id = ? AND ts = ? AND symbol = ? AND kind = ? ORDER BY seq LIMIT ?",
        (sid, ts, symbol, kind, CANDIDATES))]
    for seq in candidates:
        stored = [market_event(r) for r in conn.execute(
            f"SELECT {MARKET_COLUMNS} FROM market_data WHERE session_id = ? AND seq >= ? ORDER BY seq LIMIT ?",
            (sid, seq, len(first)))]
        if stored == list(first):
            return int(seq)
    return None
