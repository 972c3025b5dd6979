"""The promise of DESIGN.md: a replay of a paper session's market data reproduces its decisions exactly."""

import asyncio

import pytest

from engine.backtest import run_backtest
from engine.data.recording import load_recording
from engine.session import PaperSession
from tests.conftest import make_config


def fill_key(f):
    return (f.fill_id, f.client_id, f.strategy, f.symbol, f.side, f.qty, f.price, f.fee, f.liquidity, f.ts,
            f.basis, f.depth, f.latency_ns, f.mid_at_decision, f.slippage_bps)


@pytest.mark.parametrize("latency_ms", [0.0, 50.0, 7000.0])
def test_replaying_a_recorded_paper_session_reproduces_every_decision(tmp_path, latency_ms):
    # the latency breaker would pause a 7 s venue at its first order; every other breaker stays on
    config = make_config(venue={"latency_ms": latency_ms, "bar_slippage_bps": 0.0},
                         breakers={"order_latency_seconds": None})
    recording = tmp_path / "session.jsonl"
    session = PaperSession(config, record_to=recording)
    final = asyncio.run(session.run(duration=3.0))

    paper = session.engine
    assert len(paper.decisions) >= 30, "the session was too short to mean anything"
    assert final.fills >= 3, "no trading happened; the comparison would be empty"
    assert len(list(load_recording(recording))) == session.recorded_events > 0
    assert paper.recording == []  # flushed to disk, not kept in memory

    replayed = run_backtest(config, recording).engine
    assert replayed.decisions == paper.decisions  # decision for decision: time, signal, indicators, reason
    assert [fill_key(f) for f in replayed.fills] == [fill_key(f) for f in paper.fills]
    assert [(o.client_id, o.status, o.filled_qty) for o in replayed.orders.values()] == \
        [(o.client_id, o.status, o.filled_qty) for o in paper.orders.values()]
    assert replayed.account.cash == paper.account.cash


def test_a_replay_with_a_different_strategy_parameter_differs(tmp_path):
    """The comparison above can fail: change one parameter and the decisions part ways."""
    config = make_config(venue={"latency_ms": 0.0})
    recording = tmp_path / "session.jsonl"
    session = PaperSession(config, record_to=recording)
    asyncio.run(session.run(duration=2.0))
    strategies = [dict(s) for s in make_config().model_dump()["strategies"]]
    strategies[1]["params"] = dict(strategies[1]["params"], upper=70.0, lower=30.0)
    changed = make_config(venue={"latency_ms": 0.0}, strategies=strategies)
    replayed = run_backtest(changed, recording).engine
    assert replayed.decisions != session.engine.decisions
