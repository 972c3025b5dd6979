"""What a paper session recorded, read back for validation: config, decisions, orders, fills, states, data.

Everything but the market data is read in one read transaction, so a session that is still
writing is seen as one consistent cut; the market data is then streamed up to that cut.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import AppConfig, ConfigError, parse_config
from engine.model.fill import Fill
from engine.model.market import MarketEvent
from engine.store.commands import Command, applied_commands
from engine.store.database import StoreError, connect_readonly, writer_running
from engine.store.read import open_reader, pick_session, unreadable
from engine.store.recovery import predates_exit_decisions
from engine.store.rows import FILL_COLUMNS, MARKET_COLUMNS, fill_from_row, market_event
from engine.store.sessions import RUNNING
from engine.validation.matching import DecisionRecord


class ValidationInputError(StoreError):
    """A session that cannot be validated as it is; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class OrderRecord:
    client_id: str
    strategy: str
    symbol: str
    side: str
    qty: float
    status: str
    filled_qty: float
    avg_fill_price: float
    created_ns: int
    reason: str
    type: str


@dataclass(frozen=True, slots=True)
class FillRecord:
    client_id: str
    strategy: str
    symbol: str
    side: str
    qty: float
    price: float
    ts: int
    basis: str
    depth: float
    latency_ns: int
    slippage_bps: float


@dataclass(frozen=True, slots=True)
class StateRecord:
    market_ts: int
    scope: str
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class MissedSpan:
    """A stretch of market data the engine never received (a feed gap), per symbol."""

    symbol: str
    start_ts: int
    end_ts: int
    events: int


@dataclass(frozen=True, slots=True)
class FeedOutage:
    """A stretch a live feed had no reliable data for a symbol (a reconnect, a book resync): the venue's data in it
    is lost, unlike a rehearsed gap's, so only its span is known."""

    symbol: str
    start_ts: int
    end_ts: int
    detail: str


_OUTAGE = re.compile(r"^(?P<symbol>[^:]+): (?P<seconds>[0-9.e+-]+) s without reliable data")


def feed_outages(states: list[StateRecord]) -> list[FeedOutage]:
    """The feed's GAP state events as spans (the session stamps each at its start and says how long it lasted)."""
    out = []
    for s in states:
        if s.scope != "feed" or s.kind != "GAP":
            continue
        match = _OUTAGE.match(s.detail)
        if match is None:
            continue
        end = s.market_ts + int(float(match["seconds"]) * 1e9)
        out.append(FeedOutage(match["symbol"], s.market_ts, end, s.detail))
    return out


@dataclass(slots=True)
class SessionRecords:
    path: Path
    session_id: int
    status: str
    running: bool
    config: AppConfig
    restarts: int
    market_start_ns: int
    last_seq: int
    last_missed_seq: int
    last_ts: int | None
    decisions: list[DecisionRecord]
    orders: dict[str, OrderRecord]
    fills: list[FillRecord]
    states: list[StateRecord]
    commands: list[StateRecord]
    missed: list[MissedSpan]
    equity: list[tuple[int, float]]
    starting_cash: float
    trade_fills: list[Fill]  # the same fills as the engine made them, for trade analytics
    applied: list[tuple[int, int, Command]]  # (market_seq, market_ts, command): each operator command as applied
    # False for a session saved before engine-made exits were decisions (engine/store/recovery.py): its twin must
    # not record them either, or each would be a difference
    records_exits: bool = True

    def market_events(self) -> Iterator[MarketEvent]:
        """What the venue published, in order: the events the engine saw, and those a feed gap kept from it."""
        return (event for event, _ in self.numbered_events())

    def numbered_events(self) -> Iterator[tuple[MarketEvent, int]]:
        """market_events() with each one's number in what the session received (0: a feed gap kept it from the
        engine), the number an operator command's market_seq refers to."""
        conn = connect_readonly(self.path)
        try:
            missed = conn.execute(
                f"SELECT after_seq, {MARKET_COLUMNS} FROM missed_market_data WHERE session_id = ? AND seq <= ? "
                "ORDER BY seq", (self.session_id, self.last_missed_seq)) if self.last_missed_seq else iter(())
            pending = next(missed, None)
            rows = conn.execute(f"SELECT seq, {MARKET_COLUMNS} FROM market_data WHERE session_id = ? AND seq <= ? "
                                "ORDER BY seq", (self.session_id, self.last_seq))
            seq = 0
            for row in rows:
                while pending is not None and pending[0] <= seq:
                    yield market_event(pending[1:]), 0
                    pending = next(missed, None)
                seq = row[0]
                yield market_event(row[1:]), seq
            while pending is not None:
                yield market_event(pending[1:]), 0
                pending = next(missed, None)
        finally:
            conn.close()


def load_session(path: Path, session_id: int | None = None) -> SessionRecords:
    """The latest (or given) session's records; ValidationInputError when there is nothing to validate."""
    conn = open_reader(path)
    try:
        conn.execute("BEGIN")  # one snapshot: a running session's writer cannot move the cut under us
        return _load(conn, path, pick_session(conn, session_id))
    except sqlite3.Error as exc:
        raise unreadable(path, exc) from None
    finally:
        conn.close()


def _load(conn: sqlite3.Connection, path: Path, sid: int) -> SessionRecords:
    status, config_json, restarts, market_start, cash = conn.execute(
        "SELECT status, config_json, restarts, market_start_ns, starting_cash FROM sessions WHERE id = ?",
        (sid,)).fetchone()
    try:
        config = parse_config(json.loads(config_json), f"session {sid}'s stored config", stored=True)
    except ConfigError as exc:
        raise ValidationInputError(f"{path}: session {sid} ran a config this paperdesk cannot rebuild, so its twin "
                                   f"backtest cannot run:\n{exc}") from None
    has_v3 = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'missed_market_data'").fetchone() is not None
    decisions = [_decision(row) for row in conn.execute(
        "SELECT ts, strategy, symbol, signal, confidence, reason, indicators, target, order_id, denied_rule, "
        "denied_reason FROM decisions WHERE session_id = ? ORDER BY seq", (sid,))]
    last_seq, count, last_ts = conn.execute(
        "SELECT COALESCE(MAX(seq), 0), COUNT(*), MAX(ts) FROM market_data WHERE session_id = ?", (sid,)).fetchone()
    if decisions and count == 0:
        raise ValidationInputError(
            f"{path}: session {sid} has {len(decisions)} decisions but no recorded market data, so there is "
            "nothing to replay through its twin backtest. The market_data table was emptied or the database "
            "was copied without it; validate a copy that has it")
    if last_seq != count:
        raise ValidationInputError(
            f"{path}: session {sid}'s recorded market data has holes ({count} events, numbered up to {last_seq}); "
            "a twin backtest over it would not see what the session saw. Validate an intact copy")
    orders = {row[0]: OrderRecord(*row) for row in conn.execute(
        "SELECT client_id, strategy, symbol, side, qty, status, filled_qty, avg_fill_price, created_ns, reason, type "
        "FROM orders WHERE session_id = ?", (sid,))}
    fills = [FillRecord(*row) for row in conn.execute(
        "SELECT client_id, strategy, symbol, side, qty, price, ts, basis, depth, latency_ns, slippage_bps "
        "FROM fills WHERE session_id = ? ORDER BY ts, fill_id", (sid,))]
    states = [StateRecord(*row) for row in conn.execute(
        "SELECT market_ts, scope, kind, detail FROM state_events WHERE session_id = ? AND market_ts IS NOT NULL "
        "ORDER BY id", (sid,))]
    commands = [StateRecord(ts, "operator", command, f"{command} from {source}" + (f" ({reason})" if reason else "")
                            + f": {result}")
                for ts, command, source, reason, result in conn.execute(
                    "SELECT market_ts, command, source, reason, result FROM commands WHERE session_id = ? "
                    "AND market_ts IS NOT NULL AND ok = 1 ORDER BY id", (sid,))]
    missed: list[MissedSpan] = []
    last_missed = 0
    if has_v3:
        last_missed = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM missed_market_data WHERE session_id = ?",
                                   (sid,)).fetchone()[0]
        missed = _spans(conn, sid)
    equity = conn.execute("SELECT ts, equity FROM equity WHERE session_id = ? ORDER BY ts", (sid,)).fetchall()
    trade_fills = [fill_from_row(row) for row in conn.execute(
        f"SELECT {FILL_COLUMNS} FROM fills WHERE session_id = ? ORDER BY ts, fill_id", (sid,))]
    running = status == RUNNING and writer_running(path)
    applied = [c for c in applied_commands(conn, sid) if c[0] <= last_seq]
    return SessionRecords(path, sid, status, running, config, restarts, market_start, last_seq, last_missed, last_ts,
                          decisions, orders, fills, states, commands, missed, equity, cash, trade_fills, applied,
                          not predates_exit_decisions(conn, sid))


def _decision(row: tuple[Any, ...]) -> DecisionRecord:
    ts, strategy, symbol, signal, confidence, reason, indicators, target, order_id, rule, text = row
    return DecisionRecord(ts, strategy, symbol, signal, confidence, reason, json.loads(indicators), target, order_id,
                          rule, text)


def _spans(conn: sqlite3.Connection, sid: int, join_ns: int = 120_000_000_000) -> list[MissedSpan]:
    """Missed events per symbol as spans; events closer than join_ns belong to the same outage."""
    spans: list[MissedSpan] = []
    open_: dict[str, list[int]] = {}
    for ts, symbol in conn.execute("SELECT ts, symbol FROM missed_market_data WHERE session_id = ? ORDER BY seq",
                                   (sid,)):
        span = open_.get(symbol)
        if span is not None and ts - span[1] <= join_ns:
            span[1] = ts
            span[2] += 1
            continue
        if span is not None:
            spans.append(MissedSpan(symbol, *span))
        open_[symbol] = [ts, ts, 1]
    spans += [MissedSpan(symbol, *span) for symbol, span in open_.items()]
    return sorted(spans, key=lambda s: (s.start_ts, s.symbol))
