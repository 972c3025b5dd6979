"""One user strategy (a file the config names), three ways over the same market: a paper session on the ideal venue,
its twin backtest (what validate runs) and `paperdesk backtest` over that session's exported market data. The
decisions must be the same, one by one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.backtest import run_backtest
from engine.runtime import ideal_venue
from engine.validation.records import load_session
from engine.validation.twin import run_twin
from tests.engine.test_example_strategies import REPO, STEP_NS, STEPS, example
from tests.store.helpers import stepped_session


@pytest.mark.parametrize("name", ["trend_pullback", "pair_spread"])
async def test_a_user_strategy_decides_the_same_in_paper_in_the_twin_and_in_a_backtest_of_the_session(name, tmp_path):
    db, exported = tmp_path / "desk.sqlite", tmp_path / "session-market-data.csv"
    config = ideal_venue(example(name))
    await stepped_session(db, config, steps=STEPS, step_ns=STEP_NS)
    records = load_session(db)

    def key(d):  # noqa: ANN001, ANN202 (the paper session's records and the engine's decisions alike)
        return (d.ts, d.strategy, d.symbol, str(d.signal), d.target, d.reason)

    paper = [key(d) for d in records.decisions]
    assert sum(1 for d in paper if d[3] != "HOLD") >= 6
    assert [key(d) for d in run_twin(records).log.decisions] == paper
    done = subprocess.run([sys.executable, "-m", "console.cli", "export", "--what", "market_data", "--db", str(db),
                           "--out", str(exported)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = run_backtest(config, exported, session_db=db)
    assert [key(d) for d in result.engine.decisions] == paper
