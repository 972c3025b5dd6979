"""Counterfactual replays of the twin: the same backtest with some of what the paper session recorded put back in.

A difference between paper and the twin is proven to come from recorded conditions (an order's latency, its fill
price or partial fill, a feed gap, an operator command, a breaker's trading state, a refusal) when the twin,
replayed with them put back, makes paper's decision at that point. Trials branch off one pass of the twin: each
is a copy of the twin as it stood just before its first condition acts, replayed on to just past the difference,
so none starts from the beginning and a trial never replays what it cannot change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.breakers.trading_state import Restriction
from engine.clock import SimClock
from engine.core import Engine
from engine.model.market import MarketEvent, event_time
from engine.model.order import Denial, DenialRule, Order, OrderOrigin
from engine.store.commands import Command
from engine.validation.matching import DecisionRecord, match
from engine.validation.records import SessionRecords
from engine.validation.twin import OrderKey, Twin, new_twin


@dataclass(frozen=True, slots=True)
class Condition:
    """One thing the paper session recorded, in the form a replay of the twin can put back."""

    kind: str  # latency, fill, feed_gap, operator, trading_state, refusal
    ts: int    # market time from which it acts
    text: str
    latency: tuple[tuple[OrderKey, int], ...] = ()  # each order and how long it took to reach the venue
    # each order, the average price it filled at (None: as the twin's) and the share of it that filled (None: all)
    fills: tuple[tuple[OrderKey, float | None, float | None], ...] = ()
    order: OrderKey | None = None  # a venue's refusal: the order it refused
    refusal: tuple[str, str, str, str] | None = None  # refusal: rule, text, and the strategy and symbol refused
    gap: tuple[str, int, int] | None = None  # feed gap: symbol, first and last event the engine missed
    command: tuple[int, int, Command] | None = None  # operator: after market event number, at market time
    state: tuple[str, Restriction] | None = None  # trading state: the scope and the restriction a breaker imposed


@dataclass(slots=True)
class Trial:
    """Replay the twin with these conditions put back, up to end_ts; decisions: the twin's, with them."""

    conditions: tuple[Condition, ...]
    end_ts: int
    decisions: list[DecisionRecord] | None = None

    @property
    def start_ts(self) -> int:
        return min(c.ts for c in self.conditions)


class _Refusals:
    """The twin's pre-trade gate, refusing the orders of the decisions paper's risk checks had refused."""

    def __init__(self, engine: Engine, refused: dict[tuple[str, str, int], Denial]) -> None:
        self.engine = engine
        self.refused = refused

    def check(self, order: Order) -> Denial | None:
        decisions = self.engine.decisions
        if order.origin is OrderOrigin.STRATEGY and decisions:
            made_by = decisions[-1]  # a strategy's order goes out while its decision is the latest
            if (made_by.strategy, made_by.symbol) == (order.strategy, order.symbol):
                denial = self.refused.get((made_by.strategy, made_by.symbol, made_by.ts))
                if denial is not None:
                    return denial
        return self.engine.check(order)

    def submitted(self, order: Order) -> None:
        self.engine.submitted(order)


@dataclass(slots=True)
class _Branch:
    trial: Trial
    twin: Twin
    before: int  # the pass's decisions made before the branch left it
    skip: list[tuple[str, int, int]] = field(default_factory=list)
    commands: list[tuple[int, int, Command]] = field(default_factory=list)
    states: list[tuple[str, Restriction]] = field(default_factory=list)

    def feed(self, event: MarketEvent, seq: int) -> None:
        ts = event_time(event)
        engine = self.twin.engine
        while self.states and self.states[0][1].since_ns <= ts:  # a breaker's state, imposed when paper's was
            scope, restriction = self.states.pop(0)
            change = engine.guard.states.restrict(scope, restriction)
            if change is not None:
                engine.guard.note(change)
        if seq == 0 and any(event.symbol == s and a <= ts <= b for s, a, b in self.skip):
            return  # the feed gap put back: the engine never receives it, as in paper
        self.twin.step((event,))
        while seq and self.commands and self.commands[0][0] <= seq:
            _, ts, command = self.commands.pop(0)
            clock = engine.clock
            assert isinstance(clock, SimClock)
            clock.advance_to(max(ts, clock.now_ns()))
            engine.command(command.command, command.args, command.reason, ts)


def put_back(twin: Twin, conditions: Iterable[Condition]) -> _Branch:
    """A branch of twin (a copy) with conditions put back, replaying from where twin stands."""
    copy = twin.branch()
    branch = _Branch(Trial(tuple(conditions), 0), copy, len(twin.log.decisions))
    treatment = copy.venue.treatment
    refused: dict[tuple[str, str, int], Denial] = {}
    for c in branch.trial.conditions:
        treatment.latency_ns.update(c.latency)
        for key, price, share in c.fills:
            if price is not None:
                treatment.price[key] = price
            if share is not None:
                treatment.filled[key] = share
        if c.kind == "refusal" and c.refusal is not None:
            rule, text, strategy, symbol = c.refusal
            if rule == "venue" and c.order is not None:
                treatment.rejected[c.order] = text
            else:
                refused[(strategy, symbol, c.ts)] = Denial(DenialRule(rule), None, None, text)
        elif c.kind == "feed_gap" and c.gap is not None:
            branch.skip.append(c.gap)
        elif c.kind == "operator" and c.command is not None:
            branch.commands.append(c.command)
        elif c.kind == "trading_state" and c.state is not None:
            branch.states.append(c.state)
    branch.commands.sort(key=lambda c: c[0])
    branch.states.sort(key=lambda s: s[1].since_ns)
    if refused:
        copy.engine.oms.gate = _Refusals(copy.engine, refused)
    return branch


def run_trials(records: SessionRecords, trials: Sequence[Trial]) -> None:
    """One pass of the twin over the session's data; each trial branches off just before its first condition acts,
    replays to its end_ts, and gets the decisions of the twin with its conditions (those made before it branched
    off included)."""
    pending = sorted(trials, key=lambda t: t.start_ts)
    if not pending:
        return
    base = new_twin(records)
    active: list[_Branch] = []
    for event, seq in records.numbered_events():
        ts = event_time(event)
        while pending and pending[0].start_ts <= ts:
            trial = pending.pop(0)
            branch = put_back(base, trial.conditions)
            branch.trial = trial
            active.append(branch)
        for branch in active:
            branch.feed(event, seq)
        if pending:  # the pass itself is needed only until the last trial has left it
            base.step((event,))
        for branch in [b for b in active if ts > b.trial.end_ts]:  # a bar closes at the first event past its end
            _finish(base, branch)
            active.remove(branch)
        if not active and not pending:
            return
    for branch in active:
        _finish(base, branch)


def _finish(base: Twin, branch: _Branch) -> None:
    branch.trial.decisions = base.log.decisions[:branch.before] + branch.twin.log.decisions


def reach(conditions: Iterable[Condition], end_ts: int, bar_ns: int) -> int:
    """How far a replay must go to have made every decision stamped up to end_ts: a bar the engine saw no data for
    closes at the first event after the feed gap, so past the end of a gap put back there by a bar."""
    ends = [c.gap[2] + bar_ns for c in conditions if c.gap is not None and c.gap[1] <= end_ts]
    return max([end_ts, *ends])


def replay_with(records: SessionRecords, conditions: Iterable[Condition], end_ts: int) -> list[DecisionRecord]:
    """The twin's decisions with conditions put back, replayed from the session's start on its own up to the first
    event past end_ts."""
    branch = put_back(new_twin(records), conditions)
    for event, seq in records.numbered_events():
        branch.feed(event, seq)
        if event_time(event) > end_ts:
            break
    return branch.twin.log.decisions


def reproduces(paper: Sequence[DecisionRecord], twin: Sequence[DecisionRecord], target_paper: DecisionRecord | None,
               target_twin: DecisionRecord | None, tolerance_ns: int) -> bool:
    """Does a twin (its decisions for the difference's strategy and symbol) make paper's decision at that point: the
    paper decision of the difference matched and agreeing, or the twin's lone decision gone?"""
    anchor = target_paper if target_paper is not None else target_twin
    assert anchor is not None
    end = anchor.ts + tolerance_ns
    key = (anchor.strategy, anchor.symbol)
    mine = [d for d in paper if (d.strategy, d.symbol) == key and d.ts <= end]
    theirs = [d for d in twin if (d.strategy, d.symbol) == key and d.ts <= end]
    matching = match(mine, theirs, {anchor.strategy: tolerance_ns})
    if target_paper is not None:
        return any(p.paper == target_paper and p.agrees for p in matching.pairs)
    assert target_twin is not None
    return not any(t.ts == target_twin.ts and t.same_as(target_twin) for t in matching.unmatched_twin)
