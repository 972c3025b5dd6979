"""An EngineSnapshot of a session read from its database, for a console attached to another process's session.

The session's process writes what the console needs (positions, orders, fills, equity marks, its risk view, state
changes, commands); SessionReader turns it back into the picture a local session gives. A poll reads only what is
new since the last one (rows past the last rowid or sequence seen), so a long session's millions of rows are read
once, not twice a second; `+session_id` in those queries keeps SQLite on the rowid range instead of the (session_id,
...) key, which would visit every row of the session.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from dataclasses import dataclass
from typing import Any

from engine.breakers.trading_state import PORTFOLIO, SEVERITY, TradingState
from engine.model.event_log import EventLevel
from engine.model.fill import Fill
from engine.risk.round_trips import RoundTrips
from engine.snapshot import EngineSnapshot, EventView, OrderView, PositionView, QuoteView, StrategyView, VenueHealth
from engine.store.rows import FILL_COLUMNS, fill_from_row

OPEN_STATUSES = ("SUBMITTED", "ACCEPTED", "TRIGGERED", "PENDING_CANCEL", "PARTIALLY_FILLED")
MARKERS = (TradingState.HALTED.value, TradingState.EMERGENCY_STOPPED.value)
QUOTE_LOOKBACK = 20_000  # market events searched for a symbol's last book and trade when first attaching
# the order lines of one market time: an order's own events before the fills they report, state changes after
_ORDER_EVENT, _FILL, _STATE, _COMMAND, _STRATEGY = range(5)


@dataclass(frozen=True, slots=True)
class SessionRow:
    """The session's row: its status and the account as of its last saved mark."""

    id: int
    status: str
    heartbeat_wall_ns: int | None
    market_ts: int
    restarts: int


class SessionReader:
    """One session's snapshot, rebuilt poll after poll from the database (one reader per session).

    first_seq continues the event log's numbering of a previous reader, so a console that switched sessions still
    appends only new lines.
    """

    def __init__(self, session_id: int, first_seq: int = 0, n_events: int = 300, n_fills: int = 20,
                 n_equity: int = 600) -> None:
        self.session_id = session_id
        self.seq = first_seq
        self._n_equity = n_equity
        self._log: deque[EventView] = deque(maxlen=n_events)
        self._recent_fills: deque[Fill] = deque(maxlen=n_fills)
        self._trips = RoundTrips()
        self._held: dict[tuple[str, str], float] = {}  # (strategy, symbol) -> qty, from its fills
        self._fill_rowid = self._event_rowid = self._state_id = self._order_rowid = 0
        self._fills = self._orders = 0
        self._market_seq: int | None = None
        self._quotes: dict[str, dict[str, Any]] = {}
        self._commands_seen: set[int] = set()
        self._command_floor = 0  # every command at or below it has been logged
        self._markers: list[tuple[int, str]] = []
        self._restarts = 0
        self._strategy_status: dict[str, str] = {}
        self._risk_wall: int | None = None
        self._risk: dict[str, Any] = {}
        self._venue: VenueHealth | None = None
        self._speed: float | None = None
        self._symbols: list[str] | None = None
        self._first = True
        self._tables: set[str] = set()

    def note(self, ts: int, level: EventLevel, text: str) -> None:
        """A line of the console's own in the event log (it switched sessions, say), numbered with the rest."""
        self.seq += 1
        self._log.append(EventView(self.seq, ts, "engine", level.value, text))

    def poll(self, conn: sqlite3.Connection) -> tuple[SessionRow, EngineSnapshot]:
        """What the database holds now, reading only rows added since the last poll (all of them the first time)."""
        sid = self.session_id
        row = conn.execute("SELECT status, heartbeat_wall_ns, market_ts, market_start_ns, restarts, starting_cash, "
                           "equity, cash, realised, unrealised, fees, rows_committed, writer_backlog, writer_waits, "
                           "config_json FROM sessions WHERE id = ?", (sid,)).fetchone()
        status, heartbeat, market_ts, market_start, restarts, starting_cash, equity, cash, realised, unrealised, \
            fees, committed, backlog, waits, config_json = row
        now = market_ts if market_ts is not None else market_start
        if self._speed is None:
            self._speed = float(json.loads(config_json).get("venue", {}).get("speed", 1.0))
            self._tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            self._symbols = [r[0] for r in conn.execute("SELECT symbol FROM instruments WHERE session_id = ? "
                                                        "ORDER BY rowid", (sid,))]
        lines: list[tuple[int, int, int, str, str, str]] = []  # (ts, source, rowid, kind, level, text)
        lines += self._read_fills(conn)
        lines += self._read_order_events(conn)
        lines += self._read_state_events(conn, now)
        lines += self._read_commands(conn)
        self._read_risk(conn)
        strategies, strategy_lines = self._read_strategies(conn, now)
        lines += strategy_lines
        lines.sort(key=lambda line: line[:3])
        for ts, _source, _rowid, kind, level, text in lines[-(self._log.maxlen or 0):] if self._first else lines:
            self.seq += 1
            self._log.append(EventView(self.seq, ts, kind, level, text))
        self._first = False
        positions = tuple(PositionView(symbol, qty, avg, mark, unreal, real) for symbol, qty, avg, mark, unreal, real
                          in conn.execute("SELECT symbol, qty, avg_price, mark, unrealised, realised FROM positions "
                                          "WHERE session_id = ? AND qty != 0 ORDER BY symbol", (sid,)))
        marks = {p.symbol: p.mark for p in positions}
        open_orders = self._open_orders(conn)
        curve = conn.execute("SELECT ts, equity FROM equity WHERE session_id = ? ORDER BY ts DESC LIMIT ?",
                             (sid, self._n_equity)).fetchall()[::-1]
        decisions = conn.execute("SELECT MAX(seq) FROM decisions WHERE session_id = ?", (sid,)).fetchone()[0] or 0
        score, unexplained = _behaviour(conn, sid) if "behaviour_scores" in self._tables else (None, None)
        own = _strategy_scores(conn, sid, [s[0] for s in strategies]) if "behaviour_series" in self._tables else {}
        log = tuple(self._log)
        snapshot = EngineSnapshot(
            ts=now, equity=equity if equity is not None else starting_cash,
            cash=cash if cash is not None else starting_cash, starting_cash=starting_cash, realised=realised or 0.0,
            unrealised=unrealised or 0.0, fees=fees or 0.0, positions=positions,
            recent_fills=tuple(self._recent_fills), equity_series=tuple(e for _, e in curve),
            strategies=tuple(self._strategy_view(s, marks, own.get(s[0])) for s in strategies),
            orders=self._orders, open_orders=len(open_orders), fills=self._fills, decisions=decisions,
            events=tuple((line.ts, line.level, line.text) for line in log if line.kind == "engine"),
            session_id=sid, restarts=restarts, store_backlog=backlog, store_waits=waits, store_committed=committed,
            behaviour_score=score, behaviour_unexplained=unexplained, risk=self._risk, venue=self._venue,
            open_order_list=open_orders, quotes=self._read_quotes(conn), event_log=log,
            equity_ts=tuple(ts for ts, _ in curve), markers=tuple(self._markers[-50:]), speed=self._speed)
        return SessionRow(sid, status, heartbeat, now, restarts), snapshot

    # ---- the event log's sources, each read past what the last poll saw -----------------------------------------

    def _read_fills(self, conn: sqlite3.Connection) -> list[tuple[int, int, int, str, str, str]]:
        """Every new fill: booked into each strategy's round trips and position, the last few kept as lines."""
        rows = conn.execute(f"SELECT rowid, {FILL_COLUMNS} FROM fills WHERE rowid > ? AND +session_id = ? ORDER BY "
                            "rowid", (self._fill_rowid, self.session_id)).fetchall()
        lines = []
        keep = len(rows) - (self._log.maxlen or 0) if self._first else 0  # first attach: a long history's tail only
        for index, (rowid, *columns) in enumerate(rows):
            fill = fill_from_row(tuple(columns))
            self._fill_rowid = rowid
            self._trips.on_fill(fill)
            key = (fill.strategy, fill.symbol)
            self._held[key] = self._held.get(key, 0.0) + fill.side * fill.qty
            self._recent_fills.append(fill)
            if index >= keep:
                text = (f"fill {fill.fill_id} of {fill.client_id} {fill.strategy} {fill.side.name} {fill.symbol}: "
                        f"{fill.qty:g} @ {fill.price:g} fee {fill.fee:.4f} {fill.liquidity.value} "
                        f"slip {fill.slippage_bps:+.1f} bp")
                lines.append((fill.ts, _FILL, rowid, "fill", EventLevel.INFO.value, text))
        self._fills += len(rows)
        return lines

    def _read_order_events(self, conn: sqlite3.Connection) -> list[tuple[int, int, int, str, str, str]]:
        sid = self.session_id
        count, last = conn.execute("SELECT COUNT(*), MAX(rowid) FROM orders WHERE rowid > ? AND +session_id = ?",
                                   (self._order_rowid, sid)).fetchone()
        self._orders += count
        self._order_rowid = last or self._order_rowid
        if self._first:  # a long session's earlier order events are history, not the log
            last = conn.execute("SELECT rowid FROM order_events WHERE +session_id = ? ORDER BY rowid DESC LIMIT 1 "
                                "OFFSET ?", (sid, self._log.maxlen)).fetchone()
            self._event_rowid = last[0] if last is not None else 0
        rows = conn.execute("SELECT e.rowid, e.client_id, e.ts, e.status, e.reason, o.strategy, o.side, o.qty, "
                            "o.symbol, o.type FROM order_events e LEFT JOIN orders o ON o.session_id = e.session_id "
                            "AND o.client_id = e.client_id WHERE e.rowid > ? AND +e.session_id = ? ORDER BY e.rowid",
                            (self._event_rowid, sid)).fetchall()
        lines = []
        for rowid, client_id, ts, status, reason, strategy, side, qty, symbol, kind in rows:
            self._event_rowid = rowid
            what = "" if strategy is None else f" {strategy} {side} {qty:g} {symbol} {kind}"
            level = EventLevel.WARN if status in ("DENIED", "REJECTED", "EXPIRED") else EventLevel.INFO
            lines.append((ts, _ORDER_EVENT, rowid, "order", level.value,
                          f"order {client_id}{what} {status}" + (f": {reason}" if reason else "")))
        return lines

    def _read_state_events(self, conn: sqlite3.Connection, now: int) -> list[tuple[int, int, int, str, str, str]]:
        """Lifecycle and trading-state changes, breaker trips; the chart's halt, emergency-stop and restart marks."""
        rows = conn.execute("SELECT id, market_ts, scope, kind, detail FROM state_events WHERE session_id = ? AND "
                            "id > ? ORDER BY id", (self.session_id, self._state_id)).fetchall()
        lines = []
        keep = len(rows) - (self._log.maxlen or 0) if self._first else 0
        for index, (rowid, market_ts, scope, kind, detail) in enumerate(rows):
            self._state_id = rowid
            ts = market_ts if market_ts is not None else now
            if scope == "session":
                if kind == "RESUMED":
                    self._restarts += 1
                    self._markers.append((ts, f"restart {self._restarts}"))
                text, level = f"session {kind.lower()}: {detail}", EventLevel.INFO
            else:
                if scope == PORTFOLIO and kind in MARKERS:
                    self._markers.append((ts, kind))
                text = f"trading {detail}"
                level = EventLevel.INFO if kind == TradingState.ACTIVE.value else EventLevel.WARN
            if index >= keep:
                lines.append((ts, _STATE, rowid, "engine", level.value, text))
        return lines

    def _read_commands(self, conn: sqlite3.Connection) -> list[tuple[int, int, int, str, str, str]]:
        """Each command once the engine handled it, in the words the engine logs it: who sent it and what became of
        it (the console toasts a result that came from another process by them)."""
        if "risk_state" not in self._tables:  # the columns commands need came with it (schema 2)
            return []
        rows = conn.execute("SELECT id, command, reason, source, handled_wall_ns, market_ts, ok, result FROM "
                            "commands WHERE session_id = ? AND id > ? ORDER BY id",
                            (self.session_id, self._command_floor)).fetchall()
        lines = []
        waiting = False
        for cid, command, reason, source, handled, market_ts, ok, result in rows:
            if handled is None:
                waiting = True
                continue
            if not waiting:
                self._command_floor = cid
            if cid in self._commands_seen:
                continue
            self._commands_seen.add(cid)
            text = (f"command {cid} {command} from {source}" + (f" ({reason})" if reason else "")
                    + (": " if ok else ": REFUSED: ") + (result or ""))
            level = EventLevel.INFO if ok else EventLevel.WARN
            lines.append((market_ts or 0, _COMMAND, cid, "engine", level.value, text))
        self._commands_seen = {cid for cid in self._commands_seen if cid > self._command_floor}
        return lines

    def _read_strategies(self, conn: sqlite3.Connection,
                         now: int) -> tuple[list[tuple[str, str, str, str]], list[tuple[int, int, int, str, str, str]]]:
        strategies = conn.execute("SELECT name, kind, status, error FROM strategies WHERE session_id = ? ORDER BY "
                                  "rowid", (self.session_id,)).fetchall()
        lines = []
        for index, (name, _kind, status, error) in enumerate(strategies):
            before = self._strategy_status.get(name)
            self._strategy_status[name] = status
            if before is not None and before != status and status == "FAILED":
                lines.append((now, _STRATEGY, index, "engine", EventLevel.ERROR.value,
                              f"strategy {name} FAILED and stopped: {error}"))
        return strategies, lines

    # ---- the rest of the picture ----------------------------------------------------------------------------------

    def _read_risk(self, conn: sqlite3.Connection) -> None:
        """The guard's view as the session saved it (every mark and command), parsed only when it changed."""
        if "risk_state" not in self._tables:  # a database older than schema 2, not running: nothing saved
            return
        row = conn.execute("SELECT wall_ns, view FROM risk_state WHERE session_id = ?", (self.session_id,)).fetchone()
        if row is None or row[0] == self._risk_wall:
            return
        self._risk_wall = row[0]
        risk = json.loads(row[1])
        venue = risk.pop("venue", None)
        self._risk = risk
        self._venue = VenueHealth.from_json(venue) if venue is not None else None

    def _strategy_view(self, row: tuple[str, str, str, str], marks: dict[str, float],
                       behaviour: float | None) -> StrategyView:
        name, kind, status, error = row
        states = {scope["scope"]: scope["state"] for scope in self._risk.get("scopes", ())}
        own = TradingState(states.get(name, TradingState.ACTIVE.value))
        portfolio = TradingState(self._risk.get("state", TradingState.ACTIVE.value))
        stats = self._trips.of(name)
        held = tuple((symbol, qty) for (owner, symbol), qty in sorted(self._held.items()) if owner == name and qty)
        return StrategyView(name, kind, status, error, max(own, portfolio, key=SEVERITY.__getitem__).value, held,
                            self._trips.marked_pnl(name, marks), stats.trades, stats.wins,
                            self._risk.get("phases", {}).get(name), behaviour)

    def _open_orders(self, conn: sqlite3.Connection) -> tuple[OrderView, ...]:
        rows = conn.execute("SELECT client_id, strategy, symbol, side, type, qty, filled_qty, price, stop_price, "
                            f"created_ns, status, reason FROM orders WHERE session_id = ? AND status IN "
                            f"({','.join('?' * len(OPEN_STATUSES))}) ORDER BY created_ns, client_id",
                            (self.session_id, *OPEN_STATUSES))
        # who made an order (strategy, bracket exit, close-out) is not saved: origin stays empty
        return tuple(OrderView(cid, strategy, symbol, side, kind, qty, filled, price, stop, created, status, "", reason)
                     for cid, strategy, symbol, side, kind, qty, filled, price, stop, created, status, reason in rows)

    def _read_quotes(self, conn: sqlite3.Connection) -> tuple[QuoteView, ...]:
        """Each symbol's last book and trade, from the market data saved since the last poll."""
        sid = self.session_id
        if self._market_seq is None:
            top = conn.execute("SELECT MAX(seq) FROM market_data WHERE session_id = ?", (sid,)).fetchone()[0] or 0
            self._market_seq = max(0, top - QUOTE_LOOKBACK)
        # SQLite gives a bare column the values of the row MAX() picked
        rows = conn.execute("SELECT symbol, kind, MAX(seq), ts, price, bids, asks FROM market_data WHERE session_id "
                            "= ? AND seq > ? AND kind IN ('book', 'trade') GROUP BY symbol, kind",
                            (sid, self._market_seq)).fetchall()
        for symbol, kind, seq, ts, price, bids, asks in rows:
            self._market_seq = max(self._market_seq, seq)
            quote = self._quotes.setdefault(symbol, {})
            if kind == "book":
                quote["bid"], quote["ask"] = _best(bids), _best(asks)
                quote["book_ts"] = ts
            else:
                quote["last"], quote["trade_ts"] = price, ts
        views = []
        for symbol in self._symbols or ():
            quote = self._quotes.get(symbol, {})
            stamps = [quote[key] for key in ("book_ts", "trade_ts") if key in quote]
            views.append(QuoteView(symbol, quote.get("bid"), quote.get("ask"), quote.get("last"),
                                   max(stamps) if stamps else None))
        return tuple(views)


def _best(levels: str | None) -> float | None:
    parsed = json.loads(levels) if levels else []
    return float(parsed[0][0]) if parsed else None


def _behaviour(conn: sqlite3.Connection, sid: int) -> tuple[float | None, int | None]:
    """The latest live behaviour score and its unexplained differences."""
    row = conn.execute("SELECT score, summary FROM behaviour_scores WHERE session_id = ? ORDER BY wall_ns DESC "
                       "LIMIT 1", (sid,)).fetchone()
    if row is None:
        return None, None
    return row[0], json.loads(row[1]).get("unexplained")


def _strategy_scores(conn: sqlite3.Connection, sid: int, names: list[str]) -> dict[str, float | None]:
    """Each strategy's latest live behaviour score, from its own behaviour series (one index lookup each)."""
    out = {}
    for name in names:
        row = conn.execute("SELECT score FROM behaviour_series WHERE session_id = ? AND strategy = ? "
                           "ORDER BY market_ts DESC, id DESC LIMIT 1", (sid, name)).fetchone()
        if row is not None:
            out[name] = row[0]
    return out


def latest_session(conn: sqlite3.Connection) -> int | None:
    return conn.execute("SELECT MAX(id) FROM sessions").fetchone()[0]

