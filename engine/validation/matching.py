"""Matching paper decisions to the twin backtest's, and the behaviour score built from the matches.

Only actionable decisions (entries, exits, flips: every signal but HOLD) are matched and scored;
holds would inflate agreement, so they are compared separately, bar by bar. Exits the engine made
for a strategy (a bracket's fill, a trailing stop, a breaker's or the emergency stop's close-out) are
its decisions too, with their origin: two decisions agree when their signals and origins do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.model.decision import decision_origin

MINUTE_NS = 60_000_000_000
HOLD = "HOLD"


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision as either side logged it, with what became of it."""

    ts: int
    strategy: str
    symbol: str
    signal: str
    confidence: float
    reason: str
    indicators: dict[str, float] = field(default_factory=dict)
    target: float | None = None
    order_id: str | None = None
    denied_rule: str | None = None
    denied_text: str | None = None

    @property
    def actionable(self) -> bool:
        return self.signal != HOLD

    @property
    def origin(self) -> str:
        """"strategy", or the origin of the exit the engine made ("bracket stop-loss", "trailing stop", ...)."""
        return decision_origin(self.reason)

    def same_as(self, other: DecisionRecord) -> bool:
        return self.signal == other.signal and self.origin == other.origin


@dataclass(frozen=True, slots=True)
class Pair:
    paper: DecisionRecord
    twin: DecisionRecord

    @property
    def agrees(self) -> bool:
        return self.paper.same_as(self.twin)

    @property
    def dt_ns(self) -> int:
        """Paper minus twin: positive when paper decided later."""
        return self.paper.ts - self.twin.ts


@dataclass(frozen=True, slots=True)
class Matching:
    pairs: list[Pair]
    unmatched_paper: list[DecisionRecord]
    unmatched_twin: list[DecisionRecord]


def match(paper: Iterable[DecisionRecord], twin: Iterable[DecisionRecord], tolerance_ns: dict[str, int]) -> Matching:
    """One-to-one, per strategy and symbol, nearest in time within the strategy's tolerance.

    Closest pairs are taken first (ties: same signal and origin first, then earliest), and a decision is
    used once, so a burst of decisions on one side cannot all claim the same one on the other.
    """
    by_key: dict[tuple[str, str], tuple[list[DecisionRecord], list[DecisionRecord]]] = {}
    for side, records in ((0, paper), (1, twin)):
        for record in records:
            if record.actionable:
                by_key.setdefault((record.strategy, record.symbol), ([], []))[side].append(record)
    pairs: list[Pair] = []
    lone_paper: list[DecisionRecord] = []
    lone_twin: list[DecisionRecord] = []
    for (strategy, _), (ps, ts) in sorted(by_key.items()):
        tolerance = tolerance_ns[strategy]
        candidates = []
        j0 = 0
        for i, p in enumerate(ps):  # both lists are in time order: scan only the twin decisions in reach
            while j0 < len(ts) and ts[j0].ts < p.ts - tolerance:
                j0 += 1
            j = j0
            while j < len(ts) and ts[j].ts <= p.ts + tolerance:
                t = ts[j]
                candidates.append((abs(p.ts - t.ts), not p.same_as(t), min(p.ts, t.ts), i, j))
                j += 1
        candidates.sort()
        used_p: set[int] = set()
        used_t: set[int] = set()
        for _, _, _, i, j in candidates:
            if i in used_p or j in used_t:
                continue
            used_p.add(i)
            used_t.add(j)
            pairs.append(Pair(ps[i], ts[j]))
        lone_paper += [p for i, p in enumerate(ps) if i not in used_p]
        lone_twin += [t for j, t in enumerate(ts) if j not in used_t]
    pairs.sort(key=lambda pair: (min(pair.paper.ts, pair.twin.ts), pair.paper.strategy, pair.paper.symbol))
    return Matching(pairs, lone_paper, lone_twin)


@dataclass(frozen=True, slots=True)
class Score:
    """The behaviour score and its components, each 0-100 (None when there is nothing to score)."""

    score: float | None
    signal_agreement: float | None   # matched decisions whose signals agree
    timing: float | None             # 100 - average |time difference| in minutes, floored at 0
    count_ratio: float | None        # min/max of the two sides' actionable decision counts
    matched_share: float | None      # decisions matched one-to-one (100 - unmatched share)
    avg_time_diff_s: float | None
    paper_decisions: int
    twin_decisions: int
    matched: int
    agreeing: int
    unmatched_paper: int
    unmatched_twin: int

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


WEIGHTS = {"signal_agreement": 0.4, "timing": 0.2, "count_ratio": 0.2, "matched_share": 0.2}


def score(matching: Matching) -> Score:
    """0.4 signal agreement + 0.2 timing + 0.2 count ratio + 0.2 (1 - unmatched share), to 2 decimals."""
    n_pairs = len(matching.pairs)
    n_paper = n_pairs + len(matching.unmatched_paper)
    n_twin = n_pairs + len(matching.unmatched_twin)
    agreeing = sum(1 for p in matching.pairs if p.agrees)
    if n_paper + n_twin == 0:
        return Score(None, None, None, None, None, None, 0, 0, 0, 0, 0, 0)
    if n_pairs:
        signal = 100.0 * agreeing / n_pairs
        avg_dt = sum(abs(p.dt_ns) for p in matching.pairs) / n_pairs
        timing = max(0.0, 100.0 - avg_dt / MINUTE_NS)
        avg_s: float | None = avg_dt / 1e9
    else:
        signal, timing, avg_s = 0.0, 0.0, None
    count_ratio = 100.0 * min(n_paper, n_twin) / max(n_paper, n_twin)
    matched_share = 100.0 * 2 * n_pairs / (n_paper + n_twin)
    total = (WEIGHTS["signal_agreement"] * signal + WEIGHTS["timing"] * timing
             + WEIGHTS["count_ratio"] * count_ratio + WEIGHTS["matched_share"] * matched_share)
    return Score(round(total, 2), round(signal, 2), round(timing, 2), round(count_ratio, 2), round(matched_share, 2),
                 avg_s, n_paper, n_twin, n_pairs, agreeing, len(matching.unmatched_paper),
                 len(matching.unmatched_twin))


@dataclass(frozen=True, slots=True)
class HoldAgreement:
    """Bars where both sides decided and at least one held: how often both held."""

    compared: int
    both_held: int

    @property
    def percent(self) -> float | None:
        return None if not self.compared else round(100.0 * self.both_held / self.compared, 2)


def hold_agreement(paper: Sequence[DecisionRecord], twin: Sequence[DecisionRecord]) -> HoldAgreement:
    twin_at = {(d.strategy, d.symbol, d.ts): d.signal for d in twin}
    compared = both = 0
    for d in paper:
        other = twin_at.get((d.strategy, d.symbol, d.ts))
        if other is None or (d.signal != HOLD and other != HOLD):
            continue
        compared += 1
        both += d.signal == HOLD and other == HOLD
    return HoldAgreement(compared, both)


def differing_indicators(a: dict[str, float], b: dict[str, float], rel: float = 1e-9) -> dict[str, tuple[Any, Any]]:
    """Indicator name -> (paper value, twin value) for every indicator that differs."""
    out: dict[str, tuple[Any, Any]] = {}
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if x is None or y is None:
            if x != y:
                out[name] = (x, y)
        elif abs(x - y) > rel * max(abs(x), abs(y), 1e-12):
            out[name] = (x, y)
    return out
