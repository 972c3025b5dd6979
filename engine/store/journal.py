"""The engine's journal: turns what the engine does into rows, queued in memory for the writer.

Called synchronously from the hot path, it only builds tuples and appends them; the writer task
commits them. Between two market steps the queue holds whole steps, so every commit is a
consistent cut: a step's market data, what followed from it and the venue state after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from engine.breakers.guard import STORE
from engine.breakers.trading_state import StateChange
from engine.brokers.transcript import TranscriptRow
from engine.clock import Clock, wall_ns
from engine.core import Engine
from engine.model.decision import Decision
from engine.model.fill import Fill
from engine.model.market import MarketEvent
from engine.model.order import Denial, Order, OrderStatus
from engine.store.audit import MARK_COLUMNS, RowsRead, read_appended, reads_by_key
from engine.store.rows import canonical_json, fill_row, market_row, order_row
from engine.strategy.base import Strategy
from engine.strategy.loader import strategy_fingerprint

# table operations, in the order a batch applies them
OPS = ("market", "missed", "decision", "order", "order_event", "fill", "venue_event", "strategy", "venue_state",
       "equity", "position", "mark", "state_event", "risk_state", "command", "command_new", "score", "behaviour")
# where an operation's rows land, to read them back for the audit chain: (table, where its key is in the row)
KEYED: dict[str, tuple[str, tuple[int, ...]]] = {
    "decision": ("decisions", (0, 1)),
    "order": ("orders", (0, 1)), "order_event": ("order_events", (0, 1, 2)), "fill": ("fills", (0, 1)),
    "venue_event": ("venue_events", (0, 1)), "strategy": ("strategies", (0, 1)), "venue_state": ("venue_state", (0,)),
    "equity": ("equity", (0, 1)), "position": ("positions", (0, 1)), "risk_state": ("risk_state", (0,)),
    "command": ("commands", (5,)), "score": ("behaviour_scores", (0, 1)), "mark": ("sessions", (7,)),
}
# operations whose rows are chained as written (market data: inserted once, stored as built, most of the rows)
WRITTEN = {"market": "market_data", "missed": "missed_market_data"}
# operations appending to a table whose key SQLite assigns: their rows are those past the table's last rowid
APPENDED = {"state_event": "state_events", "command_new": "commands", "behaviour": "behaviour_series"}


def appended_tables(batch: dict[str, list[tuple[Any, ...]]]) -> list[str]:
    """The rowid tables a batch appends to, whose last rowids are taken before it is applied."""
    return list(dict.fromkeys(table for op, table in APPENDED.items() if batch[op]))


def batch_reads(batch: dict[str, list[tuple[Any, ...]]], last_rowids: dict[str, int],
                columns: dict[str, tuple[str, ...]]) -> list[RowsRead]:
    """The statements that read a batch's rows back once applied (last_rowids: as appended_tables' were before;
    columns: every table's)."""
    reads = [read_appended(table, columns[table], rowid) for table, rowid in last_rowids.items()]
    for op, (table, at) in KEYED.items():
        rows = batch[op]
        if rows:
            keys = (tuple(row[i] for i in at) for row in rows)
            reads += reads_by_key(table, MARK_COLUMNS if op == "mark" else columns[table], keys)
    return reads


# the behaviour score's components, as the series stores them
COMPONENTS = ("signal_agreement", "timing", "count_ratio", "matched_share")


class StoreJournal:
    """Rows waiting to be written, per operation; `audit` entries are chained by the writer in order."""

    def __init__(self, session_id: int, clock: Clock) -> None:
        self.session_id = session_id
        self.clock = clock
        self.pending: dict[str, list[tuple[Any, ...]]] = {op: [] for op in OPS}
        self.audit: list[tuple[int, str, str, dict[str, Any]]] = []
        self.count = 0
        self.market_seq = 0
        self.missed_seq = 0
        self.decision_seq = 0
        self.state_seq = 0
        self._order_events: dict[str, int] = {}
        # recovery replays durable market data through the engine: those rows exist already
        self.replaying = False
        # a running session's feed batch is being applied: its rows wait for the venue state that ends it
        self.batch_open = False
        self.known_refs: set[str] = set()
        self.venue_view: Callable[[], dict[str, Any]] | None = None  # the venue's health, saved with each risk view

    # ---- the engine's Journal protocol -----------------------------------------------------

    def market(self, event: MarketEvent) -> None:
        self.market_seq += 1
        if not self.replaying:
            self._add("market", market_row(self.session_id, self.market_seq, event))

    def decision(self, decision: Decision, order: Order | None, denial: Denial | None = None) -> None:
        self.decision_seq += 1
        if order is not None and order.status is OrderStatus.DENIED:
            denial = order.denial
        rule: str | None = None
        reason: str | None = None
        limit = value = None
        if denial is not None:
            rule, reason, limit, value = denial.rule, denial.message, denial.limit, denial.value
        elif order is not None and order.status is OrderStatus.REJECTED:
            rule, reason = "venue", order.reason
        self._add("decision", (self.session_id, self.decision_seq, decision.ts, decision.strategy, decision.symbol,
                               decision.signal.value, decision.confidence, decision.reason,
                               json.dumps(decision.indicators), decision.target,
                               order.client_id if order is not None else None, rule, reason, limit, value))

    def order(self, order: Order) -> None:
        n = self._order_events.get(order.client_id, 0) + 1
        self._order_events[order.client_id] = n
        ts = order.created_ns if n == 1 else self.clock.now_ns()
        self._add("order", order_row(self.session_id, order, ts))
        self._add("order_event", (self.session_id, order.client_id, n, ts, order.status.value, order.filled_qty,
                                  order.reason))
        if order.status in (OrderStatus.DENIED, OrderStatus.REJECTED):
            self._audit("rejection", f"order:{self.session_id}:{order.client_id}:{order.status.value}",
                        {"client_id": order.client_id, "status": order.status.value, "reason": order.reason,
                         "strategy": order.strategy, "symbol": order.symbol, "side": order.side.name,
                         "qty": order.qty, **_denial_fields(order.denial)})

    def forget_orders(self, client_ids: list[str]) -> None:
        """Orders the engine no longer holds: a venue report on one is ignored, so no event of theirs comes."""
        for client_id in client_ids:
            self._order_events.pop(client_id, None)

    def fill(self, fill: Fill) -> None:
        row = fill_row(self.session_id, fill)
        self._add("fill", row)
        self._audit("fill", f"fill:{self.session_id}:{fill.fill_id}",
                    {"fill_id": fill.fill_id, "client_id": fill.client_id, "side": fill.side.name, "qty": fill.qty,
                     "price": fill.price, "fee": fill.fee, "ts": fill.ts, "symbol": fill.symbol})

    def strategy(self, strategy: Strategy) -> None:
        kind = strategy.kind or type(strategy).__name__  # a user's class need not set kind: its name says which
        self._add("strategy", (self.session_id, strategy.name, kind, json.dumps(strategy.symbols),
                               strategy.timeframe, canonical_json(strategy.params.model_dump(mode="json")),
                               strategy.status.value, strategy.error, self.clock.now_ns(),
                               strategy_fingerprint(strategy)))

    def trading_state(self, change: StateChange) -> None:
        """A trading-state change or breaker trip, numbered in engine order so a replay recognises it.

        The store's own restriction (the database refusing writes) is live-only: a replay never recomputes it,
        so it is not numbered with the rest (numbering it would shift every later change's reference)."""
        if change.source == STORE:
            ref = f"trading:{self.session_id}:store:{wall_ns()}:{self.state_seq}"
        else:
            self.state_seq += 1
            ref = f"trading:{self.session_id}:{self.state_seq}"
        if self.replaying and ref in self.known_refs:
            return
        self._add("state_event", (self.session_id, wall_ns(), change.ts, change.scope, change.state.value,
                                  change.line()))
        self._audit("state", ref, {"scope": change.scope, "state": change.state.value,
                                   "previous": change.previous.value, "source": change.source,
                                   "cause": change.cause, "market_ts": change.ts, "until": change.until_ns})

    # ---- what the session adds ---------------------------------------------------------------

    def missed(self, event: MarketEvent) -> None:
        """An event the venue published that the engine never received (a feed outage)."""
        self.missed_seq += 1
        self._add("missed", (*market_row(self.session_id, self.missed_seq, event), self.market_seq))

    def behaviour_score(self, market_ts: int, market_seq: int, score: float | None, summary: dict[str, Any]) -> None:
        """A live behaviour score over the session up to market event market_seq, and its points of the behaviour
        series: the whole portfolio's (strategy NULL) and each strategy's the summary scores."""
        wall = wall_ns()
        self._add("score", (self.session_id, wall, market_ts, market_seq, score, json.dumps(summary)))
        for strategy, scored in [(None, summary), *(summary.get("strategies") or {}).items()]:
            parts = scored.get("components") or {}
            self._add("behaviour", (self.session_id, wall, market_ts, market_seq, strategy, scored.get("score"),
                                    *(parts.get(name) for name in COMPONENTS), scored.get("unexplained")))

    def risk_view(self, ts: int, view: dict[str, Any]) -> None:
        """The risk manager's picture (states, gauges, phases) and the venue's health for `paperdesk status`."""
        if self.venue_view is not None:
            view = {**view, "venue": self.venue_view()}
        self._add("risk_state", (self.session_id, wall_ns(), ts, view["state"], json.dumps(view)))

    def command_applied(self, command_id: int | None, command: str, args: dict[str, Any], reason: str, source: str,
                        ok: bool, result: str, ts: int) -> None:
        """An operator command the engine applied (or refused), after market event market_seq.

        command_id is the row another shell queued; None for a command given in this process (the
        console), which gets its row here.
        """
        if self.replaying:
            return
        wall = wall_ns()
        if command_id is None:
            self._add("command_new", (self.session_id, wall, command, json.dumps(args), reason, source, wall, result,
                                      self.market_seq, ts, int(ok)))
            ref = f"command:{self.session_id}:local:{wall}"
        else:
            self._add("command", (wall, result, self.market_seq, ts, int(ok), command_id))
            ref = f"command:{self.session_id}:{command_id}"
        self._audit("command", ref, {"id": command_id, "command": command, "args": args, "reason": reason,
                                     "source": source, "ok": ok, "result": result, "market_ts": ts})

    def venue_event(self, row: TranscriptRow) -> None:
        """A report from a venue holding our orders, numbered in the order the engine heard it (never replayed)."""
        self._add("venue_event", (self.session_id, row.n, row.market_seq, row.kind, row.client_id, row.ts, row.reason,
                                  row.latency_ns, row.fill_id, row.venue_ref))

    def venue_state(self, ts: int, state: dict[str, Any]) -> None:
        """The simulated market's state after the step whose events were journaled last."""
        self._add("venue_state", (self.session_id, self.market_seq, ts, json.dumps(state)))

    def mark(self, engine: Engine, ts: int) -> None:
        """Equity mark, positions and the account, for the curve and for `paperdesk status`."""
        account = engine.account
        equity, realised, unrealised = account.equity(), account.realised_pnl(), account.unrealised_pnl()
        self._add("equity", (self.session_id, ts, equity, account.cash, realised, unrealised, account.fees_paid))
        self.positions(engine, ts)
        self._add("mark", (wall_ns(), ts, equity, account.cash, realised, unrealised, account.fees_paid,
                           self.session_id))
        self.risk_view(ts, engine.risk_view())

    def positions(self, engine: Engine, ts: int) -> None:
        """Every position as it stands, for `paperdesk status` (also written right after fills)."""
        account = engine.account
        for symbol, p in account.positions.items():
            mark = account.marks.get(symbol, p.avg_price)
            self._add("position", (self.session_id, symbol, p.qty, p.avg_price, p.realised_pnl, mark,
                                   p.unrealised(mark), ts))

    def state_event(self, scope: str, kind: str, detail: str, market_ts: int | None) -> None:
        """A lifecycle or trading-state event, also appended to the audit chain."""
        wall = wall_ns()
        self._add("state_event", (self.session_id, wall, market_ts, scope, kind, detail))
        self._audit("state", f"state:{self.session_id}:{kind}:{wall}", {"scope": scope, "kind": kind,
                                                                          "detail": detail})

    # ---- the writer's side -------------------------------------------------------------------

    def take(self) -> tuple[dict[str, list[tuple[Any, ...]]], list[tuple[int, str, str, dict[str, Any]]], int]:
        """Everything queued so far, leaving the journal empty; nothing while a batch is open (recovery refuses market
        data saved beyond the venue state that ends its batch)."""
        if self.batch_open:
            return {op: [] for op in OPS}, [], 0
        batch, audit, count = self.pending, self.audit, self.count
        self.pending = {op: [] for op in OPS}
        self.audit = []
        self.count = 0
        return batch, audit, count

    def put_back(self, batch: dict[str, list[tuple[Any, ...]]], audit: list[tuple[int, str, str, dict[str, Any]]],
                 count: int) -> None:
        """A batch that could not be committed goes back in front of what came after it."""
        for op in OPS:
            self.pending[op] = batch[op] + self.pending[op]
        self.audit = audit + self.audit
        self.count += count

    # ---- internals ---------------------------------------------------------------------------

    def _add(self, op: str, row: tuple[Any, ...]) -> None:
        self.pending[op].append(row)
        self.count += 1

    def _audit(self, kind: str, ref: str, payload: dict[str, Any]) -> None:
        if self.replaying and ref in self.known_refs:
            return
        self.audit.append((wall_ns(), kind, ref, payload))
        self.count += 1


def _denial_fields(denial: Denial | None) -> dict[str, Any]:
    if denial is None:
        return {}
    return {"rule": denial.rule, "limit": denial.limit, "value": denial.value}
