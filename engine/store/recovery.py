"""Recovery: rebuild a session's engine from what is durable, or refuse.

The engine is deterministic in event time, so replaying the session's stored market data (and the
operator commands, each after the event it followed) through a fresh engine rebuilds everything
exactly: cash, positions, open orders with their queue places, strategy state and indicators, the
simulated venue's resting orders. The feed continues from its stored state (the synthetic market's
generator). Stored fills must come out of the replay identical; if any does not (say, strategy code
changed since), recovery refuses rather than trade on a guess.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.brokers.transcript import OPENING, SENT, Baseline, KnownOrder, KnownState, Transcribed, TranscriptRow
from engine.clock import SimClock
from engine.core import Engine
from engine.model.fill import Fill
from engine.model.market import MarketEvent
from engine.replay import replay
from engine.store.commands import applied_commands
from engine.store.database import StoreError, connect_readonly
from engine.store.journal import StoreJournal
from engine.store.rows import FILL_COLUMNS, MARKET_COLUMNS, fill_from_row, market_event

EQUITY_MARKS_KEPT = 2000


class RecoveryError(StoreError):
    """A session whose durable state cannot be rebuilt exactly; trading is refused."""


@dataclass(frozen=True, slots=True)
class Recovered:
    restarts: int
    events: int
    last_ts: int
    fills: int
    open_orders: int
    decisions: int
    feed_state: dict[str, Any] | None = None  # what the session's feed continues from
    venue: KnownState | None = None  # what a venue holding our orders is told to reconcile against

    def summary(self) -> str:
        return (f"restart {self.restarts}: replayed {self.events} market events, {self.fills} fills verified, "
                f"{self.open_orders} open orders resting again, {self.decisions} decisions")


def recover(path: Path, session_id: int, restarts: int, market_start_ns: int, engine: Engine,
            journal: StoreJournal) -> Recovered:
    """Replay session_id's durable market data into engine (journal attached); the feed's state comes back in
    Recovered.feed_state (blocking)."""
    conn = connect_readonly(path)
    try:
        return _recover(conn, session_id, restarts, market_start_ns, engine, journal)
    except sqlite3.Error as exc:
        raise RecoveryError(f"{path}: cannot read session {session_id} back ({exc}); refusing to trade") from None
    finally:
        conn.close()


def predates_exit_decisions(conn: sqlite3.Connection, session_id: int) -> bool:
    """Whether the session was saved before the engine recorded its exits as decisions: an order filled that no
    decision made (since then every filled order has one). Its replay, and its twin, must not record them either,
    or decisions would be numbered and matched differently from the ones saved."""
    unmade = conn.execute(  # one pass over each table: decisions has no index on order_id
        "SELECT client_id FROM orders WHERE session_id = ? AND filled_qty > 0 "
        "EXCEPT SELECT order_id FROM decisions WHERE session_id = ? LIMIT 1", (session_id, session_id)).fetchone()
    return unmade is not None


def _recover(conn: sqlite3.Connection, session_id: int, restarts: int, market_start_ns: int, engine: Engine,
             journal: StoreJournal) -> Recovered:
    max_seq = conn.execute("SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM market_data WHERE session_id = ?",
                           (session_id,)).fetchone()
    venue = conn.execute("SELECT market_seq, ts, state FROM venue_state WHERE session_id = ?",
                         (session_id,)).fetchone()
    stored_seq = venue[0] if venue else 0
    if max_seq[0] != max_seq[1] or max_seq[0] != stored_seq:
        raise RecoveryError(f"session {session_id}: stored market data ({max_seq[1]} events, last seq {max_seq[0]}) "
                            f"does not match the stored venue state (after event {stored_seq}); refusing to trade")
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'missed_market_data'").fetchone() is not None:
        journal.missed_seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM missed_market_data WHERE session_id = ?",
                                          (session_id,)).fetchone()[0]
    engine.records_exits = not predates_exit_decisions(conn, session_id)
    journal.replaying = True
    journal.known_refs = {ref for (ref,) in conn.execute("SELECT ref FROM audit WHERE session_id = ?",
                                                         (session_id,))}
    rows = conn.execute(f"SELECT {MARKET_COLUMNS} FROM market_data WHERE session_id = ? ORDER BY seq",
                        (session_id,))
    commands = applied_commands(conn, session_id)
    broker = engine.broker
    transcript = _transcript(conn, session_id) if isinstance(broker, Transcribed) else None
    if isinstance(broker, Transcribed) and transcript is not None:
        if not transcript and conn.execute("SELECT 1 FROM orders WHERE session_id = ? LIMIT 1",
                                           (session_id,)).fetchone() is not None:
            raise RecoveryError(f"session {session_id} traded on venue {broker.capabilities.name!r} before paperdesk "
                                "saved what such a venue reports, so it cannot be rebuilt; nothing was changed. Pass "
                                "--new-session to end it and start a new one")
        # the venue's reports come back from the store at the points the engine first heard them; nothing is sent
        broker.replay(transcript, {f.fill_id: f for f in _stored_fills(conn, session_id)})

    def apply_due(upto_seq: int) -> None:
        # operator commands go back in after the market event they followed, at the market time they applied
        while commands and commands[0][0] <= upto_seq:
            _, ts, command = commands.pop(0)
            clock = engine.clock
            assert isinstance(clock, SimClock), "recovery replays on a SimClock"
            clock.advance_to(max(ts, clock.now_ns()))
            engine.command(command.command, command.args, command.reason, ts)

    def events_and_commands() -> Iterator[MarketEvent]:
        for row in rows:
            apply_due(journal.market_seq)
            yield market_event(row)
        apply_due(journal.market_seq)

    try:
        events = replay(engine, events_and_commands(), mark_every_bar=False)
    except Exception as exc:
        raise RecoveryError(f"session {session_id}: replaying its market data failed at event {journal.market_seq} "
                            f"({type(exc).__name__}: {exc}); refusing to trade") from None
    finally:
        journal.replaying = False
        journal.known_refs = set()
    known: KnownState | None = None
    if isinstance(broker, Transcribed) and transcript is not None:
        leftovers, unheard = broker.go_live()
        if leftovers:
            raise RecoveryError(f"session {session_id}: the replay does not reproduce what its venue reported "
                                f"({'; '.join(leftovers[:3])}). Strategy code may have changed since it started; "
                                "refusing to trade. Start a new session with --new-session")
        saved_until = venue[1] if venue is not None else market_start_ns
        known = _known_state(transcript, unheard, engine, restarts, saved_until)
    _verify_fills(conn, session_id, engine)
    stored_orders = {cid for (cid,) in conn.execute("SELECT client_id FROM orders WHERE session_id = ?",
                                                    (session_id,))}
    missing = sorted(stored_orders - set(engine.orders))
    if missing:
        raise RecoveryError(f"session {session_id}: stored orders {', '.join(missing[:5])} do not come out of the "
                            "replay of its market data; refusing to trade")
    state: dict[str, Any] | None = json.loads(venue[2]) if venue is not None else None
    # marks come from the wall-clock loop, not from market data: take the recent curve back from the store
    marks = conn.execute("SELECT ts, equity FROM equity WHERE session_id = ? ORDER BY ts DESC LIMIT ?",
                         (session_id, EQUITY_MARKS_KEPT)).fetchall()
    engine.equity_curve = marks[::-1]
    last_ts = venue[1] if venue is not None else market_start_ns
    return Recovered(restarts, events, last_ts, len(engine.fills), len(engine.open_orders()),
                     len(engine.decisions), state, known)


def _transcript(conn: sqlite3.Connection, session_id: int) -> list[TranscriptRow]:
    return [TranscriptRow(*row) for row in conn.execute(
        "SELECT n, market_seq, kind, client_id, ts, reason, latency_ns, fill_id, venue_ref FROM venue_events "
        "WHERE session_id = ? ORDER BY n", (session_id,))]


def _stored_fills(conn: sqlite3.Connection, session_id: int) -> list[Fill]:
    return [fill_from_row(row) for row in conn.execute(f"SELECT {FILL_COLUMNS} FROM fills WHERE session_id = ?",
                                                       (session_id,))]


def _known_state(transcript: list[TranscriptRow], unheard: list[TranscriptRow], engine: Engine, run: int,
                 saved_until_ns: int) -> KnownState:
    """The orders the venue may still work (those that went out to it), every fill and the latest baseline.

    An order sent in a market event that was never saved is not the session's: reconciling finds it as unknown."""
    lost = {id(row) for row in unheard}
    sent = {row.client_id: row for row in transcript if row.kind == SENT and id(row) not in lost}
    openings = [row for row in transcript if row.kind == OPENING]
    baseline = Baseline.from_json(openings[-1].reason) if openings else None
    open_orders, unsent = [], []
    for order in engine.open_orders():
        row = sent.get(order.client_id)
        if row is not None and row.venue_ref is not None:
            open_orders.append(KnownOrder(order, row.venue_ref, row.ts))
        elif row is not None:
            unsent.append(order)  # refused before it went out; the refusal was not heard before the crash
    return KnownState(open_orders, list(engine.fills),
                      {row.venue_ref: cid for cid, row in sent.items() if row.venue_ref is not None}, baseline, run,
                      saved_until_ns, unsent)


def _verify_fills(conn: sqlite3.Connection, session_id: int, engine: Engine) -> None:
    replayed = {f.fill_id: f for f in engine.fills}
    for fill_id, side, qty, price, fee in conn.execute(
            "SELECT fill_id, side, qty, price, fee FROM fills WHERE session_id = ?", (session_id,)):
        fill = replayed.get(fill_id)
        if fill is None or (fill.side.name, fill.qty, fill.price, fill.fee) != (side, qty, price, fee):
            again = "nothing" if fill is None else f"{fill.side.name} {fill.qty:g} at {fill.price:g}"
            raise RecoveryError(
                f"session {session_id}: stored fill {fill_id} ({side} {qty:g} at {price:g}) does not come out of the "
                f"replay of its market data (replay gave {again}). Strategy or venue code may have changed since "
                "the session started; refusing to trade. Start a new session with --new-session")
