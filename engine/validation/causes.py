"""Why a paper decision differs from the twin's: causes proven by counterfactual replay, and hints.

For each strategy and symbol the two sides are "in step" at a bar where both decided the same
signal on the same indicator values holding the same position. What the paper session recorded
from the last bar in step before a difference to the difference (a refused order, a trading state,
a feed gap, a late or partial fill, an operator command, a restart) is a hint. A hint is no proof:
the window may reach back to the session's start. A difference is explained only when a replay of
the twin with some of those conditions put back (engine/validation/counterfactual.py) makes
paper's decision there: the cause is the first such set, smallest first (Explainer.candidate_sets
says in what order), one of the market's, the venue's or the operator's doing before a refusal or a
breaker state paper's engine imposed in answer. Otherwise it is unexplained, saying what was tried;
and a difference whose replays would take longer than `[validation] proof_budget_s` is "not proven",
never guessed. How long a replay takes is estimated at a reference speed (REPLAY_SECONDS_PER_EVENT),
never measured, so the same database gets the same verdict on every machine and in every process.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations

from engine.breakers.trading_state import Restriction, TradingState
from engine.clock import utc_text
from engine.core import BREAKERS
from engine.model.order import DenialRule
from engine.validation.counterfactual import Condition, Trial, reach, reproduces, run_trials
from engine.validation.matching import DecisionRecord, differing_indicators
from engine.validation.records import FillRecord, OrderRecord, SessionRecords, feed_outages

LIFECYCLE = {"STARTED", "STOPPED", "RESUMED"}
REFUSED = {"DENIED", "REJECTED"}
IN_FLIGHT = {"SUBMITTED", "ACCEPTED", "TRIGGERED", "PARTIALLY_FILLED", "PENDING_CANCEL"}
MAX_CANDIDATES = 5  # conditions nearest a difference, tried alone and in pairs
RISK_RULES = {rule.value for rule in DenialRule}
CONSEQUENCES = {"refusal", "trading_state"}  # conditions paper's own engine imposed in answer to something else


@dataclass(frozen=True, slots=True)
class Cause:
    kind: str  # risk_rejection, trading_state, operator, feed_gap, latency, partial_fill, slippage, restart, twin_*
    ts: int
    text: str

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "ts": self.ts, "time": utc_text(self.ts), "text": self.text}


@dataclass(frozen=True, slots=True)
class Target:
    """A difference to prove: paper's decision there to reproduce (or the twin's lone one to take away), and the
    stretch where the two sides parted."""

    strategy: str
    symbol: str
    first_ts: int
    last_ts: int
    paper: DecisionRecord | None
    twin: DecisionRecord | None


@dataclass(frozen=True, slots=True)
class Proof:
    """causes: the conditions whose replay reproduced paper's decision (empty: not explained); tried: each set of
    conditions replayed; note: why nothing is proven, or the other sets that also reproduced it."""

    causes: list[Cause] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    note: str = ""


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

    def held_between(self, key: tuple[str, str], ts: int) -> tuple[int | None, int | None]:
        """The position held at ts: when it last became flat at or before ts, and when it next became flat after ts
        (None: never)."""
        stamps, qty = self._ts.get(key, []), self._qty.get(key, [])
        i = j = bisect_right(stamps, ts)
        while i and abs(qty[i - 1]) > 1e-12:
            i -= 1
        while j < len(qty) and abs(qty[j]) > 1e-12:
            j += 1
        return (stamps[i - 1] if i else None), (stamps[j] if j < len(qty) else None)


# the twin's replay speed on the reference machine (bench/validation.py: about 50,000 market events a second on
# 2 cores); an estimate the budget is measured in, the same everywhere
REPLAY_SECONDS_PER_EVENT = 20e-6


class Explainer:
    """Finds the recorded causes of differences between a paper session and its twin."""

    def __init__(self, records: SessionRecords, paper: Sequence[DecisionRecord], twin: Sequence[DecisionRecord],
                 twin_fills: Sequence[FillRecord], twin_states: Sequence[tuple[int, str, str]],
                 timeframe_ns: dict[str, int], tolerance_ns: dict[str, int] | None = None,
                 budget_s: float = 0.0, replay_s_per_ns: float = 0.0) -> None:
        """budget_s: the longest the replays proving one difference may take (0: none are run); replay_s_per_ns:
        what the twin took per nanosecond of market time, to say beforehand what a replay will take."""
        self.records = records
        self.timeframe_ns = timeframe_ns
        self.tolerance_ns = tolerance_ns if tolerance_ns is not None else timeframe_ns
        self.budget_s = budget_s
        self.replay_s_per_ns = replay_s_per_ns
        self.paper = paper
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
        self._paper_positions = paper_positions
        # every order's latency, and every order's fill, as paper had them, per strategy and symbol
        self._every_order = {key: _every(f"{key[0]} {key[1]}", *self._order_conditions(key, 0, 2 ** 63))
                             for key in sorted({(o.strategy, o.symbol) for o in records.orders.values()})}

    def other_side(self, record: DecisionRecord, paper_side: bool) -> DecisionRecord | None:
        """The other side's decision at the same bar, if it decided there."""
        table = self.twin_at if paper_side else self.paper_at
        return table.get((record.strategy, record.symbol, record.ts))

    def _parted(self, strategy: str, symbol: str, first_ts: int) -> int:
        """The last bar the two sides were in step before first_ts (the session's start if none)."""
        marks = self._in_step.get((strategy, symbol), [])
        i = bisect_left(marks, first_ts)
        return marks[i - 1] if i else self.records.market_start_ns

    def hints(self, strategy: str, symbol: str, first_ts: int, last_ts: int) -> list[Cause]:
        """What paper recorded in the stretch where the two sides parted: hints, not proven causes."""
        key = (strategy, symbol)
        start = self._parted(strategy, symbol, first_ts)
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


    # ---- proofs -----------------------------------------------------------------------------

    def candidates(self, strategy: str, symbol: str, first_ts: int, last_ts: int) -> list[Condition]:
        """The recorded conditions a replay can put back, from where the two sides parted to last_ts: the
        MAX_CANDIDATES nearest the difference, then (when there are several) every order's latency at once and
        every order's fill at once, since one late or slipped order changes what the next one is."""
        start = self._parted(strategy, symbol, first_ts)
        symbols = next((c.symbols for c in self.records.config.strategies if c.name == strategy), [symbol])
        latencies, fills = self._order_conditions((strategy, symbol), start, last_ts)
        out = latencies + fills
        out += [Condition("feed_gap", g.start_ts, f"the feed gap on {g.symbol}: the engine received none of {g.events} "
                                                  f"events from {utc_text(g.start_ts)} to {utc_text(g.end_ts)}",
                          gap=(g.symbol, g.start_ts, g.end_ts))
                for g in self.records.missed if g.symbol in symbols and g.end_ts >= start and g.start_ts <= last_ts]
        out += [Condition("operator", ts, f"operator {command.command} from {command.source}"
                                          + (f" ({command.reason})" if command.reason else ""),
                          command=(seq, ts, command))
                for seq, ts, command in self.records.applied if start <= ts <= last_ts]
        out += self._breaker_states(strategy, start, last_ts) + self._refusals((strategy, symbol), start, last_ts)
        out.sort(key=lambda c: -c.ts)
        # the nearest of each kind first (a feed gap well before may matter more than the orders right before), then
        # the nearest of the rest
        kinds: dict[str, Condition] = {}
        for c in out:
            kinds.setdefault(c.kind, c)
        chosen = list(kinds.values())[:MAX_CANDIDATES]
        chosen += [c for c in out if c not in chosen][:MAX_CANDIDATES - len(chosen)]
        return sorted(chosen, key=lambda c: c.ts)

    def candidate_sets(self, strategy: str, symbol: str, first_ts: int,
                       last_ts: int) -> tuple[list[tuple[Condition, ...]], list[tuple[Condition, ...]]]:
        """What to replay, in two rounds. First each nearby candidate alone, then in pairs, then the orders of the
        position paper held there (from flat to flat: their latencies, their fills, both; a bracket's levels come
        from its entry's fill; the same replays for every difference in that position). Then, for a difference the
        first round leaves unexplained: every order of the strategy in the symbol as late as in paper, every one
        filled as in paper, both. One late or slipped order changes what the next one is, so a difference may need
        them all; those replays are the same for every difference of the strategy and symbol, so one serves all."""
        key = (strategy, symbol)
        near = self.candidates(strategy, symbol, first_ts, last_ts)
        first: list[tuple[Condition, ...]] = [(c,) for c in near]
        first += combinations(near, 2)
        since, until = self._paper_positions.held_between(key, first_ts)
        if since is not None or until is not None:  # a position held all session long is round two's
            where = (f"{strategy} {symbol} for the position held from {utc_text(since or self.records.market_start_ns)}"
                     + ("" if until is None else f" to {utc_text(until)}"))
            first += _singles_and_pair(_every(where, *self._order_conditions(key, since or 0, until or 2 ** 63)))
        second = _singles_and_pair(self._every_order.get(key, ()))
        return first, [s for s in second if s not in first]

    def _order_conditions(self, key: tuple[str, str], start: int,
                          end: int) -> tuple[list[Condition], list[Condition]]:
        """Each order in play from start to end: its latency, and its fill when paper's was not the twin's."""
        latencies: list[Condition] = []
        fills: list[Condition] = []
        venue_latency_ns = int(self.records.config.venue.latency_ms * 1_000_000)
        for order in sorted(self.records.orders.values(), key=lambda o: o.created_ns):
            if (order.strategy, order.symbol) != key or order.created_ns > end or order.status in REFUSED:
                continue
            done = self._fills_by_order.get(order.client_id, [])
            if not (start <= order.created_ns or any(start <= f.ts <= end for f in done)
                    or (done[0].ts > end if done else order.status in IN_FLIGHT)):
                continue
            ref = (order.strategy, order.symbol, order.side, order.type, order.created_ns)
            what = f"order {order.client_id} ({order.side} {order.qty:g})"
            latency_ns = done[0].latency_ns if done else venue_latency_ns
            if latency_ns > 0:
                latencies.append(Condition("latency", order.created_ns, f"{what} reached the venue "
                                                                        f"{latency_ns / 1e6:g} ms after it was sent",
                                           latency=((ref, latency_ns),)))
            if not done:
                continue
            share = order.filled_qty / order.qty if order.filled_qty + 1e-12 < order.qty else None
            moved = any(f.basis != "MID" and f.slippage_bps != 0 for f in done)
            if moved or share is not None:
                filled = "" if share is None else f" (filled {order.filled_qty:g} of {order.qty:g})"
                fills.append(Condition("fill", order.created_ns, f"{what} filled at {order.avg_fill_price:g}{filled}, "
                                                                 f"{max(f.slippage_bps for f in done):.2f} bps from "
                                                                 "the mid when sent",
                                       fills=((ref, order.avg_fill_price if moved else None, share),)))
        return latencies, fills

    def _breaker_states(self, strategy: str, start: int, end: int) -> list[Condition]:
        """The restrictions paper's breakers imposed on the strategy or the portfolio in force from start to end (a
        breaker's trip comes from the whole account's history: put back, the twin is held as paper was)."""
        out: dict[tuple[str, str], Condition] = {}
        for s in self.records.states:
            if s.market_ts > end or s.scope not in ("portfolio", strategy):
                continue
            source, restriction = _breaker_restriction(s.detail, s.market_ts)
            if source is None:
                continue
            if restriction is None or (restriction.until_ns is not None and restriction.until_ns < start):
                out.pop((s.scope, source), None)  # lifted, or over before the two parted
                continue
            out[(s.scope, source)] = Condition(
                "trading_state", s.market_ts, f"{s.scope} {restriction.state} by {source} from "
                                              f"{utc_text(s.market_ts)}: {restriction.cause}",
                state=(s.scope, restriction))
        return list(out.values())

    def _refusals(self, key: tuple[str, str], start: int, end: int) -> list[Condition]:
        out = []
        decisions = self._paper.get(key, [])
        stamps = self._stamps.get(id(decisions), [])
        for d in decisions[bisect_left(stamps, start):bisect_right(stamps, end)]:
            other = self.twin_at.get((d.strategy, d.symbol, d.ts))
            if d.denied_rule is None or (other is not None and other.denied_rule is not None):
                continue
            order = self.records.orders.get(d.order_id) if d.order_id else None
            if d.denied_rule == "venue" and order is None or d.denied_rule not in RISK_RULES | {"venue"}:
                continue
            ref = (order.strategy, order.symbol, order.side, order.type, order.created_ns) if order else None
            out.append(Condition("refusal", d.ts, f"paper's {d.signal} refused by {d.denied_rule}: {d.denied_text}",
                                 order=ref, refusal=(d.denied_rule, d.denied_text or "", d.strategy, d.symbol)))
        return out

    def prove(self, targets: Sequence[Target]) -> list[Proof]:
        """Each difference's proof: the smallest set of conditions whose replay reproduces paper's decision, the
        nearby ones tried first; each round is one pass of the twin with its replays branching off."""
        if self.budget_s <= 0:
            return [Proof(note="not proven: proofs are off ([validation] proof_budget_s = 0)") for _ in targets]
        rounds = [self.candidate_sets(t.strategy, t.symbol, t.first_ts, t.last_ts) for t in targets]
        proofs = [Proof(note="unexplained: paper recorded nothing there that a replay can put back")
                  if not first and not second else Proof() for first, second in rounds]
        spent = [0.0] * len(targets)
        settled = [bool(p.note) for p in proofs]  # proven, not proven, or nothing to try: no further round
        for step in (0, 1):
            trials: dict[tuple[tuple[str, int, str], ...], Trial] = {}  # one replay per set, whichever asks
            asked: dict[int, list[tuple[Condition, ...]]] = {}
            for i, target in enumerate(targets):
                sets = rounds[i][step]
                if not sets or settled[i]:
                    continue
                end = self._end(target)
                # what this difference adds: a replay another difference already asks for is only carried further
                spent[i] += self.replay_s_per_ns * sum(
                    end - min(c.ts for c in s) if (t := trials.get(_set_key(s))) is None else max(0, end - t.end_ts)
                    for s in sets)
                if spent[i] > self.budget_s:
                    proofs[i] = Proof(tried=proofs[i].tried + [_set_text(s) for s in sets],
                                      note=f"not proven: its replays would take about {spent[i]:.3g} s, over the "
                                           f"proof budget of {self.budget_s:g} s ([validation] proof_budget_s)")
                    settled[i] = True
                    continue
                for s in sets:
                    trial = trials.setdefault(_set_key(s), Trial(s, end))
                    trial.end_ts = max(trial.end_ts, reach(s, end, self.tolerance_ns[target.strategy]))
                asked[i] = sets
            run_trials(self.records, list(trials.values()))
            for i, sets in asked.items():
                proofs[i] = self._proof(targets[i], sets, trials, proofs[i].tried)
                settled[i] = bool(proofs[i].causes)
        return proofs

    def _end(self, target: Target) -> int:
        """How far a replay must go to see the difference: one tolerance past it."""
        last = max(d.ts for d in (target.paper, target.twin) if d is not None)
        return last + self.tolerance_ns[target.strategy]

    def _proof(self, target: Target, sets: list[tuple[Condition, ...]],
               trials: dict[tuple[tuple[str, int, str], ...], Trial], tried_before: list[str]) -> Proof:
        tolerance = self.tolerance_ns[target.strategy]
        proven = [s for s in sets if reproduces(self.paper, trials[_set_key(s)].decisions or [], target.paper,
                                                target.twin, tolerance)]
        tried = tried_before + [_set_text(s) for s in sets]
        if not proven:
            return Proof(tried=tried, note=f"unexplained: none of {len(tried)} replays of the twin with what paper "
                                           "recorded put back made paper's decision")
        smallest = min(len(s) for s in proven)
        # a refusal or a breaker's state follows from what the market, the venue or the operator did: when one of
        # those proves the difference as well, it is the cause to name (a feed gap, not the stale-data refusal)
        first, *others = sorted((s for s in proven if len(s) == smallest),
                                key=lambda s: sum(c.kind in CONSEQUENCES for c in s))
        causes = [Cause(c.kind, c.ts, c.text) for c in first]
        note = "also proven alone: " + " | ".join(_set_text(s) for s in others) if others else ""
        return Proof(causes, tried, note)


_STATE_LINE = re.compile(r"^[^:]+: \w+ -> (?P<state>[A-Z_]+) \((?P<source>[a-z_]+): (?P<cause>.*?)\)"
                         r"(?: until (?P<until>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \(market time\))?$")


def _breaker_restriction(line: str, ts: int) -> tuple[str | None, Restriction | None]:
    """The breaker and the restriction it imposed from a state line paper recorded ("sma: ACTIVE -> COOLDOWN
    (daily_loss: ...) until ..."); no restriction for a lift, no breaker for the operator's or market data's."""
    found = _STATE_LINE.match(line)
    if found is None or found["source"] not in BREAKERS or found["state"] not in TradingState.__members__:
        return None, None
    state = TradingState[found["state"]]
    if state is TradingState.ACTIVE:
        return found["source"], None
    until = found["until"]
    until_ns = None if until is None else int(datetime.strptime(until, "%Y-%m-%d %H:%M:%S")
                                              .replace(tzinfo=UTC).timestamp()) * 1_000_000_000
    return found["source"], Restriction(state, found["source"], found["cause"], ts, until_ns)


def _every(where: str, latencies: list[Condition], fills: list[Condition]) -> tuple[Condition, ...]:
    """Every order's latency as one condition, and every order's fill as another (when paper's differ)."""
    out = []
    if latencies:
        out.append(Condition("latency", min(c.ts for c in latencies), f"every order of {where} ({len(latencies)}) "
                                                                      "reached the venue as late as in paper",
                             latency=tuple(x for c in latencies for x in c.latency)))
    if fills:
        out.append(Condition("fill", min(c.ts for c in fills), f"every order of {where} ({len(fills)}) filled at "
                                                               "paper's price and quantity",
                             fills=tuple(x for c in fills for x in c.fills)))
    return tuple(out)


def _singles_and_pair(together: tuple[Condition, ...]) -> list[tuple[Condition, ...]]:
    return [(c,) for c in together] + ([together] if len(together) == 2 else [])


def _set_key(conditions: tuple[Condition, ...]) -> tuple[tuple[str, int, str], ...]:
    return tuple((c.kind, c.ts, c.text) for c in conditions)


def _set_text(conditions: tuple[Condition, ...]) -> str:
    return " + ".join(f"[{c.kind}] {c.text}" for c in conditions)


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
