"""Why a paper decision differs from the twin's: the recorded causes in the stretch where the two parted.

For each strategy and symbol the two sides are "in step" at a bar where both decided the same
signal on the same indicator values holding the same position. A difference at time t is looked
up in the window from the last bar in step before t to t: whatever the paper session recorded
there (a refused order, a trading state, a feed gap, a late or partial fill, a restart) is a cause;
a window with nothing recorded is unexplained.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from engine.clock import utc_text
from engine.validation.matching import DecisionRecord, differing_indicators
from engine.validation.records import FillRecord, OrderRecord, SessionRecords, feed_outages

LIFECYCLE = {"STARTED", "STOPPED", "RESUMED"}
REFUSED = {"DENIED", "REJECTED"}
IN_FLIGHT = {"SUBMITTED", "ACCEPTED", "TRIGGERED", "PARTIALLY_FILLED", "PENDING_CANCEL"}
MAX_CAUSES = 6


@dataclass(frozen=True, slots=True)
class Cause:
    kind: str  # risk_rejection, trading_state, operator, feed_gap, latency, partial_fill, slippage, restart, twin_*
    ts: int
    text: str

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "ts": self.ts, "time": utc_text(self.ts), "text": self.text}


class Positions:
    """A strategy's position in a symbol over time, from its fills."""

    def __init__(self, fills: Sequence[FillRecord]) -> None:
        self._ts: dict[tuple[str, str], list[int]] = {}
        self._qty: dict[tuple[str, str], list[float]] = {}
        for f in sorted(fills, key=lambda f: f.ts):
            key = (f.strategy, f.symbol)
            qty = self._qty.setdefault(key, [])
            qty.append((qty[-1] if qty else 0.0) + (f.qty if f.side == "BUY" else -f.qty))
            self._ts.setdefault(key, []).append(f.ts)

    def at(self, key: tuple[str, str], ts: int) -> float:
        """The position after every fill stamped at or before ts."""
        i = bisect_right(self._ts.get(key, []), ts)
        return self._qty[key][i - 1] if i else 0.0


class Explainer:
    """Finds the recorded causes of differences between a paper session and its twin."""

    def __init__(self, records: SessionRecords, paper: Sequence[DecisionRecord], twin: Sequence[DecisionRecord],
                 twin_fills: Sequence[FillRecord], twin_states: Sequence[tuple[int, str, str]],
                 timeframe_ns: dict[str, int]) -> None:
        self.records = records
        self.timeframe_ns = timeframe_ns
        self.paper_at = {(d.strategy, d.symbol, d.ts): d for d in paper}
        self.twin_at = {(d.strategy, d.symbol, d.ts): d for d in twin}
        self._paper = _by_key(paper)
        self._twin = _by_key(twin)
        self._stamps = {id(ds): [d.ts for d in ds] for table in (self._paper, self._twin) for ds in table.values()}
        self._twin_states = twin_states
        self._outages = feed_outages(records.states)
        paper_positions = Positions(records.fills)
        twin_positions = Positions(twin_fills)
        self._in_step: dict[tuple[str, str], list[int]] = {}
        for key, decisions in self._paper.items():
            marks = []
            for d in decisions:
                other = self.twin_at.get((d.strategy, d.symbol, d.ts))
                if (other is not None and other.signal == d.signal
                        and not differing_indicators(d.indicators, other.indicators)
                        and abs(paper_positions.at(key, d.ts) - twin_positions.at(key, d.ts)) <= 1e-9):
                    marks.append(d.ts)
            self._in_step[key] = marks
        self._fills_by_order: dict[str, list[FillRecord]] = {}
        for f in records.fills:
            self._fills_by_order.setdefault(f.client_id, []).append(f)

    def other_side(self, record: DecisionRecord, paper_side: bool) -> DecisionRecord | None:
        """The other side's decision at the same bar, if it decided there."""
        table = self.twin_at if paper_side else self.paper_at
        return table.get((record.strategy, record.symbol, record.ts))

    def causes(self, strategy: str, symbol: str, first_ts: int, last_ts: int) -> list[Cause]:
        key = (strategy, symbol)
        marks = self._in_step.get(key, [])
        i = bisect_left(marks, first_ts)
        start = marks[i - 1] if i else self.records.market_start_ns
        out = self._rejections(key, start, last_ts) + self._states(strategy, start, last_ts)
        out += self._operator(start, last_ts) + self._gaps(symbol, start, last_ts)
        out += self._restarts(start, last_ts) + self._executions(key, start, last_ts)
        out.sort(key=lambda c: c.ts)
        seen: set[tuple[str, str]] = set()
        unique = []
        for cause in out:
            if (cause.kind, cause.text) not in seen:
                seen.add((cause.kind, cause.text))
                unique.append(cause)
        return unique

    # ---- the recorded causes ---------------------------------------------------------------

    def _rejections(self, key: tuple[str, str], start: int, end: int) -> list[Cause]:
        out = []
        for side, by_key in (("", self._paper), ("twin_", self._twin)):
            decisions = by_key.get(key, [])
            stamps = self._stamps.get(id(decisions), [])
            for d in decisions[bisect_left(stamps, start):bisect_right(stamps, end)]:
                if d.denied_rule is not None:
                    kind = "venue_rejection" if d.denied_rule == "venue" else "risk_rejection"
                    who = "the twin's" if side else "paper's"
                    out.append(Cause(side + kind, d.ts, f"{who} {d.signal} refused by {d.denied_rule}: "
                                                        f"{d.denied_text}"))
        return out

    def _states(self, strategy: str, start: int, end: int) -> list[Cause]:
        out = []
        in_force: dict[str, tuple[int, str, str]] = {}
        for s in self.records.states:
            if s.kind in LIFECYCLE or s.scope not in ("portfolio", strategy):
                continue
            if s.market_ts < start:
                in_force[s.scope] = (s.market_ts, s.kind, s.detail)
            elif s.market_ts <= end:
                out.append(Cause("trading_state", s.market_ts, s.detail))
        for ts, kind, detail in in_force.values():
            if kind != "ACTIVE":
                out.append(Cause("trading_state", ts, f"in force since {utc_text(ts)}: {detail}"))
        for ts, scope, detail in self._twin_states:
            if scope in ("portfolio", strategy) and start <= ts <= end:
                out.append(Cause("twin_trading_state", ts, f"the twin's {detail}"))
        return out

    def _operator(self, start: int, end: int) -> list[Cause]:
        return [Cause("operator", c.market_ts, c.detail) for c in self.records.commands
                if start <= c.market_ts <= end]

    def _gaps(self, symbol: str, start: int, end: int) -> list[Cause]:
        out = [Cause("feed_gap", g.start_ts, f"feed gap on {symbol}: the engine received none of {g.events} events "
                                             f"from {utc_text(g.start_ts)} to {utc_text(g.end_ts)}")
               for g in self.records.missed if g.symbol == symbol and g.end_ts >= start and g.start_ts <= end]
        out += [Cause("feed_gap", g.start_ts, f"live feed gap from {utc_text(g.start_ts)}: {g.detail}")
                for g in self._outages if g.symbol == symbol and g.end_ts >= start and g.start_ts <= end]
        return out

    def _restarts(self, start: int, end: int) -> list[Cause]:
        return [Cause("restart", s.market_ts, f"the session restarted: {s.detail}") for s in self.records.states
                if s.kind == "RESUMED" and start <= s.market_ts <= end]

    def _executions(self, key: tuple[str, str], start: int, end: int) -> list[Cause]:
        out = []
        frame = self.timeframe_ns[key[0]]
        venue_latency_ns = int(self.records.config.venue.latency_ms * 1_000_000)
        for order in self.records.orders.values():
            if (order.strategy, order.symbol) != key or order.created_ns > end or order.status in REFUSED:
                continue
            fills = self._fills_by_order.get(order.client_id, [])
            # in play during the window: sent in it, filling in it, or still on its way through it
            in_play = (start <= order.created_ns or any(start <= f.ts <= end for f in fills)
                       or (fills[0].ts > end if fills else order.status in IN_FLIGHT))
            if not in_play:
                continue
            latency_ns = fills[0].latency_ns if fills else venue_latency_ns
            if latency_ns > 0:
                out.append(Cause("latency", fills[0].ts if fills else order.created_ns,
                                 _latency_text(order, fills[0] if fills else None, latency_ns, frame)))
            if not fills:
                continue
            if len(fills) > 1 or order.filled_qty + 1e-12 < order.qty:
                out.append(Cause("partial_fill", fills[0].ts, f"order {order.client_id} filled {order.filled_qty:g} "
                                                              f"of {order.qty:g} in {len(fills)} fill(s) "
                                                              f"({order.status})"))
            worst = max(fills, key=lambda f: f.slippage_bps)
            if worst.basis != "MID" and worst.slippage_bps > 0:
                out.append(Cause("slippage", worst.ts, f"order {order.client_id} filled at {worst.price:g}, "
                                                       f"{worst.slippage_bps:.2f} bps worse than the mid when sent "
                                                       "(the twin fills at the mid)"))
        return out


def _latency_text(order: OrderRecord, first: FillRecord | None, latency_ns: int, frame: int) -> str:
    bar_close = order.created_ns - order.created_ns % frame + frame
    head = f"order {order.client_id} ({order.side} {order.qty:g}) waited {latency_ns / 1e6:g} ms for the venue"
    if first is None:
        if order.status in IN_FLIGHT:
            return f"{head} and had not filled when the session's data ended"
        return f"{head} and ended unfilled ({order.status}: {order.reason})"
    where = (f"after the bar closing at {utc_text(bar_close)} (the next decision saw it unfilled)"
             if first.ts >= bar_close else "in the same bar")
    return f"{head} and filled {(first.ts - order.created_ns) / 1e9:g} s after it was sent, {where}"


def _by_key(decisions: Sequence[DecisionRecord]) -> dict[tuple[str, str], list[DecisionRecord]]:
    out: dict[tuple[str, str], list[DecisionRecord]] = {}
    for d in decisions:
        out.setdefault((d.strategy, d.symbol), []).append(d)
    return out
