"""What the console's detail, behaviour and journal screens show, read from a session's database.

Plain functions over a read-only connection (engine.store.read.open_reader) that return dataclasses; the screens
call them in a worker thread, so the event loop never waits on the disk. A validation replays the whole session
through its twin, seconds of Python: in_child runs it in a child process, as the live score does, so it never takes
the GIL from a session trading in the console's own process.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from engine.analytics.trades import ClosedTrade, TradeMetrics, closed_trades, trade_metrics
from engine.model.fill import Fill
from engine.store.database import StoreError, connect_readonly
from engine.store.read import behaviour_scores, open_reader, unreadable
from engine.store.rows import FILL_COLUMNS, fill_from_row
from engine.validation.matching import HOLD, DecisionRecord
from engine.validation.validate import Difference, ValidationReport, validate

# each breaker's settings in [breakers] (its gauge's name -> the keys that configure it)
BREAKER_SETTINGS: dict[str, tuple[str, ...]] = {
    "daily_loss": ("daily_loss", "daily_loss_cooldown_hours"),
    "drawdown": ("drawdown", "drawdown_cooldown_hours"),
    "order_latency": ("order_latency_seconds", "latency_pause_hours"),
    "consecutive_losses": ("consecutive_losses", "losses_cooldown_hours"),
    "correlation": ("correlation",),
    "volatility_spike": ("volatility_spike", "volatility_short_samples", "volatility_long_samples",
                         "volatility_pause_hours"),
    "market_data": ("stale_seconds", "max_clock_skew_seconds", "healthy_after_seconds"),
}
SHARED_SETTINGS = ("evaluate_seconds", "warn_at")  # every breaker's


@contextmanager
def reading(path: Path, check: bool = True) -> Iterator[sqlite3.Connection]:
    """A read-only connection in one read transaction (a running session's writer cannot move the cut); damage or a
    busy file met while reading becomes one StoreError naming the file. check=False skips open_reader's scan of every
    page, for a read repeated on a file already checked (a journal's next page)."""
    if check:
        conn = open_reader(path)
    elif not path.exists():
        raise StoreError(f"{path}: no such database (a session creates it: paperdesk run --db {path})")
    else:
        conn = connect_readonly(path)
    try:
        conn.execute("BEGIN")
        yield conn
    except (sqlite3.Error, ValueError) as exc:  # ValueError: a stored row that does not decode (JSON, text, a fill)
        raise unreadable(path, exc) from None
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class DecisionRow(DecisionRecord):
    """One decision as the session stored it: the validation's record of it, its number, and the limit and value of
    the rule that refused it."""

    seq: int = 0
    denied_limit: float | None = None
    denied_value: float | None = None

    def refusal(self) -> str:
        """'' when nothing refused it; else the rule, its message, and the limit and value it compared."""
        if self.denied_rule is None:
            return ""
        numbers = [f"{name} {value:g}" for name, value in (("limit", self.denied_limit), ("value", self.denied_value))
                   if value is not None]
        return (f"{self.denied_rule}: {self.denied_text or 'refused'}"
                + (f" ({', '.join(numbers)})" if numbers else ""))


DECISION_COLUMNS = ("ts, strategy, symbol, signal, confidence, reason, indicators, target, order_id, denied_rule, "
                    "denied_reason, seq, denied_limit, denied_value")


def _decision(row: tuple[Any, ...]) -> DecisionRow:
    ts, strategy, symbol, signal, confidence, reason, indicators, target, order_id, rule, text, seq, limit, value = row
    return DecisionRow(ts, strategy, symbol, signal, confidence, reason, json.loads(indicators), target, order_id,
                       rule, text, seq, limit, value)


def record_key(d: DecisionRecord) -> tuple[int, str, str, str, str, str | None]:
    """A decision's identity across the stored row and the validation's record read from it."""
    return (d.ts, d.strategy, d.symbol, d.signal, d.reason, d.order_id)


# ---- an order --------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OrderState:
    ts: int          # market time
    status: str
    filled_qty: float
    reason: str


@dataclass(frozen=True, slots=True)
class FillRow:
    """A fill with what the fill simulator assumed for it."""

    fill_id: str
    ts: int
    side: str
    qty: float
    price: float
    fee: float
    liquidity: str      # MAKER | TAKER
    basis: str          # what price it filled against (the book, the mid, a bar, ...)
    depth: float        # book depth it consumed
    latency_ns: int
    mid_at_decision: float
    slippage_bps: float

    @classmethod
    def of(cls, f: Fill) -> FillRow:
        """A fill the engine holds (a session not saved shows its recent ones)."""
        return cls(f.fill_id, f.ts, f.side.name, f.qty, f.price, f.fee, f.liquidity.value, f.basis.value, f.depth,
                   f.latency_ns, f.mid_at_decision, f.slippage_bps)


@dataclass(frozen=True, slots=True)
class OrderDetail:
    client_id: str
    strategy: str
    symbol: str
    side: str
    type: str
    qty: float
    price: float | None
    stop_price: float | None
    tif: str
    reduce_only: bool
    created_ns: int
    status: str
    filled_qty: float
    avg_fill_price: float
    reason: str
    decision: DecisionRow | None   # the decision that made it (None: the engine made it, a bracket or a close-out)
    states: list[OrderState]
    fills: list[FillRow]

    @property
    def made_by(self) -> str:
        if self.decision is not None:
            return f"decision #{self.decision.seq}: {self.decision.signal} ({self.decision.reason})"
        first = self.states[0].reason if self.states else ""
        return f"the engine ({first})" if first else "the engine"


def order_detail(path: Path, session_id: int, client_id: str) -> OrderDetail:
    """An order, its decision, its state history and its fills; StoreError when the session has no such order."""
    with reading(path) as conn:
        row = conn.execute(
            "SELECT client_id, strategy, symbol, side, type, qty, price, stop_price, tif, reduce_only, created_ns, "
            "status, filled_qty, avg_fill_price, reason FROM orders WHERE session_id = ? AND client_id = ?",
            (session_id, client_id)).fetchone()
        if row is None:
            raise StoreError(f"order {client_id}: session {session_id} has no such order saved yet")
        decision = conn.execute(f"SELECT {DECISION_COLUMNS} FROM decisions WHERE session_id = ? AND order_id = ? "
                                "ORDER BY seq LIMIT 1", (session_id, client_id)).fetchone()
        states = [OrderState(*r) for r in conn.execute(
            "SELECT ts, status, filled_qty, reason FROM order_events WHERE session_id = ? AND client_id = ? ORDER BY n",
            (session_id, client_id))]
        fills = [FillRow(*r) for r in conn.execute(
            "SELECT fill_id, ts, side, qty, price, fee, liquidity, basis, depth, latency_ns, mid_at_decision, "
            "slippage_bps FROM fills WHERE session_id = ? AND client_id = ? ORDER BY ts, fill_id",
            (session_id, client_id))]
    cid, strategy, symbol, side, type_, qty, price, stop, tif, reduce_only, created, status, filled, avg, reason = row
    return OrderDetail(cid, strategy, symbol, side, type_, qty, price, stop, tif, bool(reduce_only), created, status,
                       filled, avg, reason, None if decision is None else _decision(decision), states, fills)


# ---- a strategy ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StrategyDetail:
    name: str
    kind: str
    symbols: list[str]
    timeframes: list[str]          # the first is the one it decides on
    params: dict[str, Any]         # as the session ran it
    settings: dict[str, Any]       # the rest of its stored config entry: sizing, exits, phase
    status: str                    # its code's: RUNNING, FAILED, ...
    error: str
    decisions: int
    last_decision: DecisionRow | None
    trades: list[ClosedTrade]
    metrics: TradeMetrics


def strategy_detail(path: Path, session_id: int, name: str) -> StrategyDetail:
    """A strategy as the session ran it: config, last decision and its round trips; StoreError when unknown."""
    with reading(path) as conn:
        entry = next((s for s in _stored_config(conn, session_id).get("strategies", []) if s.get("name") == name),
                     None)
        row = conn.execute("SELECT kind, symbols, timeframe, params, status, error FROM strategies "
                           "WHERE session_id = ? AND name = ?", (session_id, name)).fetchone()
        if entry is None and row is None:
            raise StoreError(f"strategy {name}: session {session_id} did not run it")
        count = conn.execute("SELECT COUNT(*) FROM decisions WHERE session_id = ? AND strategy = ?",
                             (session_id, name)).fetchone()[0]
        last = conn.execute(f"SELECT {DECISION_COLUMNS} FROM decisions WHERE session_id = ? AND strategy = ? "
                            "ORDER BY seq DESC LIMIT 1", (session_id, name)).fetchone()
        fills = [fill_from_row(r) for r in conn.execute(
            f"SELECT {FILL_COLUMNS} FROM fills WHERE session_id = ? AND strategy = ? ORDER BY ts, fill_id",
            (session_id, name))]
    entry = entry or {}
    kind, symbols, timeframe, params, status, error = row if row is not None else (
        entry.get("kind", ""), "[]", entry.get("timeframe", ""), "{}", "unknown", "")
    timeframes = [timeframe, *(t for t in entry.get("timeframes", []) if t != timeframe)]
    settings = {k: v for k, v in entry.items() if k not in ("name", "kind", "symbols", "timeframe", "timeframes",
                                                             "params")}
    trades = closed_trades(fills)
    return StrategyDetail(name, kind, json.loads(symbols) if row is not None else entry.get("symbols", []),
                          timeframes, json.loads(params) if row is not None else entry.get("params", {}), settings,
                          status, error, count, None if last is None else _decision(last), trades,
                          trade_metrics(trades))


def _stored_config(conn: sqlite3.Connection, session_id: int) -> dict[str, Any]:
    row = conn.execute("SELECT config_json FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        raise StoreError(f"session {session_id}: no such session in the database")
    config: dict[str, Any] = json.loads(row[0])
    return config


# ---- a breaker -------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StateEvent:
    market_ts: int | None
    wall_ns: int
    scope: str
    kind: str       # the scope's trading state after the change
    detail: str


@dataclass(frozen=True, slots=True)
class BreakerDetail:
    breaker: str
    scope: str
    settings: dict[str, Any]   # its [breakers] settings as the session ran
    events: list[StateEvent]   # its trips and the states it set or lifted, oldest first


def breaker_detail(path: Path, session_id: int, breaker: str, scope: str) -> BreakerDetail:
    """A breaker's configuration and every state change it caused (its trips and their expiry) in the session."""
    with reading(path) as conn:
        section = _stored_config(conn, session_id).get("breakers", {})
        # a change's detail names its source: "portfolio: ACTIVE -> COOLDOWN (daily_loss: ...)"
        events = [StateEvent(*r) for r in conn.execute(
            "SELECT market_ts, wall_ns, scope, kind, detail FROM state_events WHERE session_id = ? AND "
            "instr(detail, ?) > 0 ORDER BY id", (session_id, f"({breaker}: "))]
    keys = (*BREAKER_SETTINGS.get(breaker, tuple(section)), *SHARED_SETTINGS)
    settings = {key: section[key] for key in keys if key in section}
    return BreakerDetail(breaker, scope, settings, [e for e in events if e.scope == scope])


# ---- the decision journal --------------------------------------------------------------------------------------

def strategy_names(path: Path, session_id: int) -> list[str]:
    """The strategies the session runs, in its config's order."""
    with reading(path) as conn:
        return [s["name"] for s in _stored_config(conn, session_id).get("strategies", [])]


def decision_page(path: Path, session_id: int, strategy: str, before_seq: int | None = None,
                  limit: int = 200) -> list[DecisionRow]:
    """A strategy's decisions (holds included), newest first: the `limit` before decision number before_seq.

    Read without the file's full scan (strategy_names does it once): a page turn on a database of gigabytes must not
    wait seconds for it."""
    with reading(path, check=False) as conn:
        return [_decision(r) for r in conn.execute(
            f"SELECT {DECISION_COLUMNS} FROM decisions WHERE session_id = ? AND strategy = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT ?", (session_id, strategy, 2**62 if before_seq is None else before_seq, limit))]


@dataclass(frozen=True, slots=True)
class TwinSide:
    """The twin backtest's decision beside a paper one."""

    signal: str | None      # None: the twin made no entry or exit there
    ts: int | None
    agrees: bool
    how: str                # matched, same bar, paper only, ...


class TwinBeside:
    """Paper decision -> the twin's beside it, from one validation run's matching and differences."""

    def __init__(self, report: ValidationReport) -> None:
        self.until_ts = report.until_ts
        self._by_paper: dict[tuple[int, str, str, str, str, str | None], TwinSide] = {}
        self._acted_at: dict[tuple[str, str, int], DecisionRecord] = {}  # every twin entry or exit, by bar
        self.twin_only: dict[str, int] = {}
        matching = report.matching
        if matching is not None:
            for pair in matching.pairs:
                self._by_paper[record_key(pair.paper)] = TwinSide(pair.twin.signal, pair.twin.ts, pair.agrees,
                                                                  "matched")
                self._acted_at[(pair.twin.strategy, pair.twin.symbol, pair.twin.ts)] = pair.twin
            for t in matching.unmatched_twin:
                self._acted_at[(t.strategy, t.symbol, t.ts)] = t
                self.twin_only[t.strategy] = self.twin_only.get(t.strategy, 0) + 1
        for d in report.differences:
            if d.kind == "paper only" and d.paper is not None:
                twin = d.twin
                self._by_paper[record_key(d.paper)] = TwinSide(
                    None if twin is None else twin.signal, None if twin is None else twin.ts, False,
                    "paper only" + ("" if twin is None else ", the twin's at the same bar"))

    def beside(self, row: DecisionRow) -> TwinSide | None:
        """None when the validation run did not cover the decision (made after it read the session)."""
        if self.until_ts is None or row.ts > self.until_ts:
            return None
        found = self._by_paper.get(record_key(row))
        if found is not None:
            return found
        acted = self._acted_at.get((row.strategy, row.symbol, row.ts))
        if row.signal == HOLD:
            if acted is not None:
                return TwinSide(acted.signal, acted.ts, False, "the twin acted at this bar")
            return TwinSide(None, None, True, "no entry or exit")
        return None


# ---- the behaviour score ---------------------------------------------------------------------------------------

PROVEN, UNEXPLAINED, NOT_PROVEN = "proven", "unexplained", "not proven"


def verdict(d: Difference) -> str:
    """proven (a replay with paper's conditions put back made paper's decision), not proven (its replays would go
    over the proof budget, or proofs are off) or unexplained (none of the replays tried made it)."""
    if d.causes:
        return PROVEN
    return NOT_PROVEN if d.proof.startswith(NOT_PROVEN) else UNEXPLAINED


@dataclass(frozen=True, slots=True)
class BehaviourView:
    report: ValidationReport
    differences: list[Difference]                # unexplained first, then not proven, then proven, each in time order
    trend: list[tuple[int, float | None]] = field(default_factory=list)  # (market ts, live score), oldest first


def behaviour(path: Path, session_id: int) -> BehaviourView:
    """Validate the session now (its twin backtest: seconds on a long session) and read its live score's trend.

    StoreError (ValidationInputError, and a refusal such as drift) says why it cannot be validated."""
    report = validate(path, session_id)
    rank = {UNEXPLAINED: 0, NOT_PROVEN: 1, PROVEN: 2}
    ordered = sorted(report.differences, key=lambda d: rank[verdict(d)])  # stable: time order within each
    return BehaviourView(report, ordered, behaviour_trend(path, session_id))


def behaviour_trend(path: Path, session_id: int) -> list[tuple[int, float | None]]:
    """The live behaviour score the session recorded over time (market ts, score), oldest first."""
    with reading(path) as conn:
        return [(row["market_ts"], row["score"]) for row in behaviour_scores(conn, session_id)]


# ---- off the console's process -----------------------------------------------------------------------------------

T = TypeVar("T")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # where `python -m console.desk_reads` finds it in a checkout


async def in_child(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) in a child process (fn, its arguments and its result picklable); its exception is raised here.
    Cancelled (the screen closed), the child is killed.

    A plain subprocess with its own pipes, not multiprocessing: under Textual, standard error is the app's capture,
    which multiprocessing's start-up cannot hand to a child."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console.desk_reads", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, cwd=PACKAGE_ROOT)  # its errors come back pickled, never onto the screen
    try:
        out, _ = await proc.communicate(pickle.dumps((fn, args)))
    except asyncio.CancelledError:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0 or not out:
        raise StoreError(f"the validation process ended with no result (exit code {proc.returncode})")
    ok, value = await asyncio.to_thread(pickle.loads, out)  # a long session's report: not on the event loop
    if not ok:
        raise value
    result: T = value
    return result


def _serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    """The child's side of in_child: a pickled (fn, args) in, a pickled (True, result) or (False, exception) out."""
    fn, args = pickle.load(stdin)
    try:
        answer: tuple[bool, Any] = (True, fn(*args))
    except Exception as exc:  # raised again in the console, where the screen says it
        answer = (False, exc)
    pickle.dump(answer, stdout)
    stdout.flush()
    return 0


if __name__ == "__main__":
    answers = sys.stdout.buffer
    sys.stdout = sys.stderr  # a print on the way must not break the pickled answer
    sys.exit(_serve(sys.stdin.buffer, answers))
