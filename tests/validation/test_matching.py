"""Matching decisions one-to-one, nearest in time within tolerance, and the score's arithmetic."""

from engine.validation.matching import DecisionRecord, differing_indicators, hold_agreement, match, score

MIN = 60_000_000_000


def d(minute: float, signal: str, strategy: str = "s", symbol: str = "X", **indicators: float) -> DecisionRecord:
    return DecisionRecord(int(minute * MIN), strategy, symbol, signal, 1.0, "", indicators)


def test_each_decision_is_used_once_and_the_nearest_pair_wins():
    paper = [d(10, "LONG"), d(11, "LONG")]
    twin = [d(11, "LONG")]
    m = match(paper, twin, {"s": MIN})
    assert [(p.paper.ts, p.twin.ts) for p in m.pairs] == [(11 * MIN, 11 * MIN)]
    assert m.unmatched_paper == [paper[0]] and m.unmatched_twin == []


def test_decisions_beyond_the_tolerance_do_not_match_and_other_symbols_never_do():
    m = match([d(10, "LONG"), d(20, "SHORT", symbol="Y")], [d(12, "LONG"), d(20, "SHORT")], {"s": MIN})
    assert m.pairs == [] and len(m.unmatched_paper) == 2 and len(m.unmatched_twin) == 2


def test_at_equal_distance_the_agreeing_signal_is_preferred():
    m = match([d(10, "SHORT")], [d(9, "LONG"), d(11, "SHORT")], {"s": MIN})
    assert [p.twin.signal for p in m.pairs] == ["SHORT"] and m.unmatched_twin[0].signal == "LONG"


def test_holds_are_not_matched_but_compared_bar_by_bar():
    paper = [d(1, "HOLD"), d(2, "HOLD"), d(3, "LONG")]
    twin = [d(1, "HOLD"), d(2, "LONG"), d(3, "LONG")]
    m = match(paper, twin, {"s": 0})
    assert len(m.pairs) == 1 and m.unmatched_twin == [twin[1]]
    holds = hold_agreement(paper, twin)
    assert (holds.compared, holds.both_held, holds.percent) == (2, 1, 50.0)


def test_the_score_weighs_signal_timing_count_and_unmatched_as_designed():
    # paper: 4 actionable, twin: 3; matched 3 (one a minute late, one disagreeing); 1 paper unmatched
    paper = [d(10, "LONG"), d(20, "SHORT"), d(31, "LONG"), d(40, "FLAT")]
    twin = [d(10, "LONG"), d(20, "LONG"), d(30, "LONG")]
    s = score(match(paper, twin, {"s": MIN}))
    signal, timing, count, matched = 100 * 2 / 3, 100 - 1 / 3, 100 * 3 / 4, 100 * 6 / 7
    assert s.score == round(0.4 * signal + 0.2 * timing + 0.2 * count + 0.2 * matched, 2) == 78.74
    assert (s.signal_agreement, s.timing, s.count_ratio, s.matched_share) == \
        (round(signal, 2), round(timing, 2), round(count, 2), round(matched, 2))
    assert (s.matched, s.agreeing, s.unmatched_paper, s.unmatched_twin) == (3, 2, 1, 0)
    assert s.avg_time_diff_s == 20.0


def test_timing_is_floored_at_zero_and_nothing_to_compare_has_no_score():
    far = score(match([d(0, "LONG")], [d(200, "LONG")], {"s": 300 * MIN}))
    assert far.timing == 0.0 and far.score == 80.0
    empty = score(match([d(1, "HOLD")], [d(1, "HOLD")], {"s": MIN}))
    assert empty.score is None and empty.paper_decisions == 0


def test_differing_indicators_names_each_value_that_differs():
    assert differing_indicators({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.5, "c": 3.0}) == \
        {"b": (2.0, 2.5), "c": (None, 3.0)}
    assert differing_indicators({"a": 1.0}, {"a": 1.0 + 1e-13}) == {}
