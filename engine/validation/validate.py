"""`paperdesk validate`: a paper session's decisions against its twin backtest's, scored and explained."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.clock import utc_text
from engine.config import ValidationConfig
from engine.data.bars import timeframe_ns
from engine.validation.causes import REPLAY_SECONDS_PER_EVENT, Cause, Explainer, Target
from engine.validation.drift import DriftError, refusal, session_drift
from engine.validation.matching import (
    DecisionRecord,
    HoldAgreement,
    Matching,
    Score,
    differing_indicators,
    hold_agreement,
    match,
    score,
)
from engine.validation.realism import execution_realism
from engine.validation.records import SessionRecords, ValidationInputError, feed_outages, load_session
from engine.validation.twin import run_twin


@dataclass(frozen=True, slots=True)
class Difference:
    """An unmatched or disagreeing decision, with the other side's decision at that bar and the causes."""

    kind: str  # "paper only", "twin only", "signals differ"
    strategy: str
    symbol: str
    paper: DecisionRecord | None
    twin: DecisionRecord | None
    indicators: dict[str, tuple[Any, Any]]
    causes: list[Cause]  # proven by counterfactual replay
    hints: list[Cause] = field(default_factory=list)  # recorded where the two sides parted: not proven
    tried: list[str] = field(default_factory=list)    # the sets of conditions replayed
    proof: str = ""                                    # why nothing is proven, when not for want of a cause

    @property
    def explained(self) -> bool:
        return bool(self.causes)

    def as_dict(self) -> dict[str, Any]:
        def side(d: DecisionRecord | None) -> dict[str, Any] | None:
            if d is None:
                return None
            return {"ts": d.ts, "time": utc_text(d.ts), "signal": d.signal, "origin": d.origin,
                    "confidence": d.confidence, "reason": d.reason, "order_id": d.order_id,
                    "denied_rule": d.denied_rule}
        return {"kind": self.kind, "strategy": self.strategy, "symbol": self.symbol, "paper": side(self.paper),
                "twin": side(self.twin), "differing_indicators": {k: list(v) for k, v in self.indicators.items()},
                "causes": [c.as_dict() for c in self.causes] or "unexplained", "proof": self.proof,
                "tried": self.tried, "hints (not proven)": [c.as_dict() for c in self.hints]}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    value: float | None
    threshold: str
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "threshold": self.threshold, "passed": self.passed}


@dataclass(slots=True)
class ValidationReport:
    session_id: int
    status: str
    running: bool
    strategy: str | None
    market_events: int
    until_ts: int | None
    score: Score
    checks: list[Check]
    per_strategy: dict[str, Score]
    holds: HoldAgreement
    differences: list[Difference]
    execution: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    matching: Matching | None = None  # the pairs behind the score, to pool sessions (not reported)

    @property
    def passed(self) -> bool:
        return self.score.score is not None and all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "session": self.session_id, "status": self.status, "running": self.running, "strategy": self.strategy,
            "market_events": self.market_events, "until_ts": self.until_ts,
            "until": utc_text(self.until_ts) if self.until_ts else None,
            "score": self.score.as_dict(), "passed": self.passed, "checks": [c.as_dict() for c in self.checks],
            "strategies": {name: s.as_dict() for name, s in self.per_strategy.items()},
            "holds": {"compared": self.holds.compared, "both_held": self.holds.both_held,
                      "agreement": self.holds.percent},
            "differences": [d.as_dict() for d in self.differences],
            "explained": sum(1 for d in self.differences if d.explained),
            "unexplained": sum(1 for d in self.differences if not d.explained),
            "execution": self.execution, "notes": self.notes,
        }

    def lines(self) -> list[str]:
        s = self.score
        out = list(self.notes)
        scope = f" strategy {self.strategy}" if self.strategy else ""
        until = f" up to {utc_text(self.until_ts)} (market time)" if self.until_ts else ""
        out.append(f"session {self.session_id}{scope}: {self.market_events} market events{until}")
        if s.score is None:
            out.append("behaviour score: none yet (neither side has an entry or exit to compare)")
        else:
            out.append(f"behaviour score {s.score:.2f} / 100  ({'PASS' if self.passed else 'FAIL'})")
            out.append(f"  signal agreement {s.signal_agreement:.2f}% x0.4 | timing {s.timing:.2f} x0.2 "
                       f"(avg {_seconds(s.avg_time_diff_s)}) | count ratio {s.count_ratio:.2f}% x0.2 | "
                       f"matched {s.matched_share:.2f}% x0.2")
            out.append(f"  decisions: paper {s.paper_decisions}, twin {s.twin_decisions}, matched {s.matched} "
                       f"({s.agreeing} agree), paper only {s.unmatched_paper}, twin only {s.unmatched_twin}")
        for check in self.checks:
            value = "n/a" if check.value is None else f"{check.value:g}"
            out.append(f"  {'ok  ' if check.passed else 'FAIL'} {check.name} = {value} (needs {check.threshold})")
        if self.holds.compared:
            out.append(f"holds: {self.holds.percent:.2f}% agree ({self.holds.both_held} of {self.holds.compared} "
                       "bars where either side held)")
        if len(self.per_strategy) > 1:
            for name, st in self.per_strategy.items():
                value = "n/a" if st.score is None else f"{st.score:.2f}"
                out.append(f"  {name}: score {value}, paper {st.paper_decisions} / twin {st.twin_decisions} decisions, "
                           f"{st.unmatched_paper + st.unmatched_twin} unmatched")
        explained = sum(1 for d in self.differences if d.explained)
        out.append(f"differences: {len(self.differences)} ({explained} explained, "
                   f"{len(self.differences) - explained} unexplained)")
        for d in self.differences:
            out += _difference_lines(d)
        out += _execution_lines(self.execution)
        return out


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _difference_lines(d: Difference) -> list[str]:
    def side(name: str, r: DecisionRecord | None) -> str:
        if r is None:
            return f"{name}: no decision at that bar"
        refused = f", refused by {r.denied_rule}" if r.denied_rule else ""
        origin = "" if r.origin == "strategy" else f" [{r.origin}]"
        return f"{name}: {r.signal}{origin} at {utc_text(r.ts)} (confidence {r.confidence:.2f}{refused})"
    out = [f"- {d.kind}: {d.strategy} {d.symbol} | {side('paper', d.paper)} | {side('twin', d.twin)}"]
    if d.indicators:
        out.append("    indicators differ: " + ", ".join(f"{k} paper {_num(a)} twin {_num(b)}"
                                                          for k, (a, b) in d.indicators.items()))
    for cause in d.causes:
        out.append(f"    cause (proven by replay) [{cause.kind}] {utc_text(cause.ts)}: {cause.text}")
    if d.proof:
        out.append(f"    {'' if d.causes else 'cause: '}{d.proof}")
    if not d.causes:
        out += [f"      tried: {line}" for line in d.tried]
    out += [f"    hint (not proven) [{c.kind}] {utc_text(c.ts)}: {c.text}" for c in d.hints]
    return out


def _num(value: Any) -> str:
    return "none" if value is None else f"{value:.6g}"


def _execution_lines(e: dict[str, Any]) -> list[str]:
    def dist(name: str, d: dict[str, Any], unit: str) -> str:
        if not d["count"]:
            return f"  {name}: none"
        return (f"  {name}: n={d['count']} mean {d['mean']:.2f} p50 {d['p50']:.2f} p95 {d['p95']:.2f} "
                f"max {d['max']:.2f} {unit}")
    out = ["execution against the backtest's assumptions:",
           dist("slippage vs twin price", e["slippage_vs_twin_bps"], "bps"),
           dist("slippage vs mid when sent", e["slippage_vs_mid_bps"], "bps"),
           dist("decision to fill", e["decision_to_fill_ms"], "ms (market time)")]
    rate = "n/a" if e["fill_rate"] is None else f"{e['fill_rate']:.2f}%"
    partial = "n/a" if e["partial_fill_share"] is None else f"{e['partial_fill_share']:.2f}%"
    out.append(f"  orders sent {e['orders_sent']} (refused {e['orders_refused']}), fill rate {rate}, "
               f"partial fills {partial}")
    out += [f"  optimistic: {line}" for line in e["optimism"]] or ["  optimistic fills: none found in the ledger"]
    return out


def validate(path: Path, session_id: int | None = None, strategy: str | None = None,
             thresholds: ValidationConfig | None = None, allow_drift: bool = False) -> ValidationReport:
    """Load a session, run its twin and compare; ValidationInputError when there is nothing to compare, DriftError
    when the twin would not run the strategy code and config the session ran (unless allow_drift)."""
    return validate_records(load_session(path, session_id), strategy, thresholds, allow_drift)


def validate_records(records: SessionRecords, strategy: str | None = None,
                     thresholds: ValidationConfig | None = None, allow_drift: bool = False) -> ValidationReport:
    """allow_drift: validate a drifted session anyway, every difference unexplained (its cause may be the change)."""
    config = records.config
    names = [s.name for s in config.strategies]
    if strategy is not None and strategy not in names:
        raise ValidationInputError(f"--strategy {strategy}: session {records.session_id} did not run it; "
                                   f"its strategies: {', '.join(names) or 'none'}")
    if not records.decisions:
        state = "still running" if records.running else records.status.lower()
        raise ValidationInputError(
            f"session {records.session_id} ({state}) has no decisions yet: its strategies decide at each closed bar "
            "once warmed up, so there is nothing to compare. Let it run longer, then validate again")
    thresholds = thresholds or config.validation
    drift = session_drift(records.path, records.session_id, config)
    if drift.changes and not allow_drift:
        raise DriftError(refusal(records.session_id, drift))
    twin = run_twin(records)
    wanted = set(names) if strategy is None else {strategy}
    paper = [d for d in records.decisions if d.strategy in wanted]
    twin_decisions = [d for d in twin.log.decisions if d.strategy in wanted]
    frames = {s.name: timeframe_ns(s.timeframe) for s in config.strategies}
    tolerance = {name: int(thresholds.tolerance_bars * frame) for name, frame in frames.items()}
    matching = match(paper, twin_decisions, tolerance)
    twin_states = [(c.ts, c.scope, c.line()) for c in twin.log.states]
    twin_fills = twin.fills()
    # at the reference speed, not the twin's measured one: a verdict must not depend on the machine or its load
    events = records.last_seq + records.last_missed_seq
    replay_s_per_ns = REPLAY_SECONDS_PER_EVENT * events / max(1, (records.last_ts or 0) - records.market_start_ns)
    # a drifted twin is not the session's: replaying it with paper's conditions put back proves nothing
    explainer = Explainer(records, paper, twin_decisions, twin_fills, twin_states, frames, tolerance,
                          0.0 if drift.changes else thresholds.proof_budget_s, replay_s_per_ns)
    total = score(matching)
    per_strategy = {name: score(match([d for d in paper if d.strategy == name],
                                      [d for d in twin_decisions if d.strategy == name], tolerance))
                    for name in names if name in wanted}
    fills = [f for f in records.fills if f.strategy in wanted]
    execution = execution_realism(matching.pairs, records.orders, fills, twin_fills,
                                  [d.order_id for d in paper if d.order_id is not None], config.venue.limit_fill.value)
    notes = [f"drift (--allow-drift: every difference counted unexplained): {change}" for change in drift.changes]
    notes += [f"drift not checked: {line}" for line in drift.unchecked]
    if records.running:
        notes.append(f"session {records.session_id} is still running: this covers what it recorded so far "
                     "(its live score is in `paperdesk status`)")
    elif records.status == "RUNNING":
        notes.append(f"session {records.session_id} was interrupted (crashed or killed) and not resumed: this covers "
                     "what it recorded")
    outages = feed_outages(records.states)
    if outages:
        lost = sum(g.end_ts - g.start_ts for g in outages) / 1e9
        notes.append(f"the live feed lost data {len(outages)} time(s), {lost:.3g} s in all (reconnects, book resyncs): "
                     "the twin replays what the session received, so it saw the same silence")
    differences = _differences(matching, explainer)
    if drift.changes:  # a change may be the cause of any difference, so none is put down to the venue
        differences = [replace(d, causes=[], hints=[], tried=[], proof="unexplained: the twin does not run what the "
                               "session ran (drift, named above), so no cause can be proven") for d in differences]
    return ValidationReport(records.session_id, records.status, records.running, strategy, twin.events,
                            records.last_ts, total, _checks(total, differences, thresholds), per_strategy,
                            hold_agreement(paper, twin_decisions), differences, execution, notes, matching)


def _checks(s: Score, differences: list[Difference], t: ValidationConfig) -> list[Check]:
    """One rule for every threshold: a value at the threshold passes (>= a minimum, <= a maximum)."""
    unexplained = sum(1 for d in differences if not d.explained)
    return [
        Check("behaviour score", s.score, f">= {t.min_score:g}", s.score is not None and s.score >= t.min_score),
        Check("signal agreement %", s.signal_agreement, f">= {t.min_signal_agreement:g}",
              s.signal_agreement is not None and s.signal_agreement >= t.min_signal_agreement),
        Check("average timing difference s", None if s.avg_time_diff_s is None else round(s.avg_time_diff_s, 3),
              f"<= {t.max_timing_seconds:g}",
              s.avg_time_diff_s is not None and s.avg_time_diff_s <= t.max_timing_seconds),
        Check("trade matching %", s.matched_share, f">= {t.min_trade_matching:g}",
              s.matched_share is not None and s.matched_share >= t.min_trade_matching),
        Check("unexplained differences", unexplained, f"<= {t.max_unexplained}", unexplained <= t.max_unexplained),
    ]


def _differences(matching: Matching, explainer: Explainer) -> list[Difference]:
    out = []
    for p in matching.unmatched_paper:
        other = explainer.other_side(p, paper_side=True)
        out.append(Difference("paper only", p.strategy, p.symbol, p, other,
                              differing_indicators(p.indicators, other.indicators) if other else {},
                              [], explainer.hints(p.strategy, p.symbol, p.ts, p.ts)))
    for t in matching.unmatched_twin:
        other = explainer.other_side(t, paper_side=False)
        out.append(Difference("twin only", t.strategy, t.symbol, other, t,
                              differing_indicators(other.indicators, t.indicators) if other else {},
                              [], explainer.hints(t.strategy, t.symbol, t.ts, t.ts)))
    for pair in matching.pairs:
        if pair.agrees:
            continue
        p, t = pair.paper, pair.twin
        out.append(Difference("signals differ", p.strategy, p.symbol, p, t, differing_indicators(p.indicators,
                                                                                                  t.indicators),
                              [], explainer.hints(p.strategy, p.symbol, min(p.ts, t.ts), max(p.ts, t.ts))))
    out.sort(key=lambda d: (min(r.ts for r in (d.paper, d.twin) if r is not None), d.strategy))
    proofs = explainer.prove([Target(d.strategy, d.symbol, min(r.ts for r in (d.paper, d.twin) if r is not None),
                                     max(r.ts for r in (d.paper, d.twin) if r is not None),
                                     None if d.kind == "twin only" else d.paper,
                                     d.twin if d.kind == "twin only" else None) for d in out])
    return [replace(d, causes=p.causes, tried=p.tried, proof=p.note) for d, p in zip(out, proofs, strict=True)]
