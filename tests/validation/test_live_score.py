"""The live behaviour score: computed in a child process at the session's interval, stored, shown by status."""

import json
import sqlite3
from collections import Counter

from console.store_snapshot import SessionReader
from engine.session import PaperSession
from engine.store.read import behaviour_history
from engine.validation.matching import WEIGHTS
from engine.validation.validate import validate
from tests.console.test_operator_commands import paperdesk
from tests.store.helpers import query, stepped_session
from tests.validation.helpers import venue_config


async def test_a_running_session_scores_itself_and_status_shows_the_score_and_its_trend(tmp_path):
    db = tmp_path / "desk.sqlite"
    config = venue_config()
    config = config.model_copy(update={"validation": config.validation.model_copy(
        update={"live_interval_seconds": 1.0})})
    session = PaperSession(config, db_path=db)
    final = await session.run(duration=4.5)
    rows = query(db, "SELECT market_ts, market_seq, score, summary FROM behaviour_scores ORDER BY wall_ns")
    scored = [r for r in rows if r[2] is not None]
    assert scored, rows
    assert all(score == 100.0 for _, _, score, _ in scored)  # the parity venue: every live score is exact
    seqs = [seq for _, seq, _, _ in scored]
    assert seqs == sorted(seqs) and seqs[-1] <= session.journal.market_seq
    assert json.loads(scored[-1][3])["unexplained"] == 0
    assert final.behaviour_score == 100.0 and "behaviour=100.00 unexplained=0" in final.status_line()
    status = paperdesk("status", "--db", str(db))
    assert "behaviour vs backtest: 100.00/100" in status.stdout and "trend 100.00" in status.stdout


async def test_the_live_score_over_a_lagging_venue_is_the_validate_score_so_far(tmp_path):
    db = tmp_path / "desk.sqlite"
    session = await stepped_session(db, venue_config(latency_ms=90_000.0), close=False)
    try:
        assert await session.writer.flush()
        summary = await session.live_score()
    finally:
        await session.close()
    report = validate(db)
    assert summary["score"] == report.score.score < 100.0
    assert summary["differences"] == len(report.differences) > 0 and summary["unexplained"] == 0


async def test_each_strategy_scores_itself_in_its_own_series_as_validate_scores_it(tmp_path):
    db = tmp_path / "desk.sqlite"
    session = await stepped_session(db, venue_config(latency_ms=90_000.0), close=False)
    try:
        assert await session.writer.flush()
        await session._score()  # as the running session does at its live interval
        assert await session.writer.flush()
        snap = session.snapshot()
    finally:
        await session.close()
    report = validate(db)
    names = [s.name for s in session.config.strategies]
    assert len(names) > 1 and list(report.per_strategy) == names
    unexplained = Counter(d.strategy for d in report.differences if not d.explained)
    for name, own in report.per_strategy.items():
        assert behaviour_history(db, 1, name) == [{
            "market_ts": report.until_ts, "score": own.score, **{part: getattr(own, part) for part in WEIGHTS},
            "unexplained": unexplained[name]}], name
    scores = {name: own.score for name, own in report.per_strategy.items()}
    assert len({s for s in scores.values() if s is not None}) > 1, scores  # their own, not the portfolio's copied
    assert [p["score"] for p in behaviour_history(db, 1)] == [report.score.score]  # the portfolio's (strategy NULL)
    assert {s.name: s.behaviour for s in snap.strategies} == scores  # what the console's strategies panel shows
    conn = sqlite3.connect(db)
    try:  # and what a console attached to the database shows
        _, attached = SessionReader(1).poll(conn)
    finally:
        conn.close()
    assert {s.name: s.behaviour for s in attached.strategies} == scores
