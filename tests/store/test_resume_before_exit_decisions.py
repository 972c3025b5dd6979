"""A session saved before engine-made exits were recorded as decisions resumes with its decisions numbered as saved.

Such a session's replay must not record them: decisions are written by number on replay (INSERT OR IGNORE), so every
exit recorded now would shift the numbers, and the replay would write copies of saved decisions under new numbers.
"""

from engine.core import Engine
from engine.session import PaperSession
from engine.store.recovery import predates_exit_decisions
from engine.validation.validate import validate
from tests.conftest import BASE_CONFIG, make_config
from tests.store.helpers import query

STEP_NS = 3_000_000_000

TRAILING = {**BASE_CONFIG["strategies"][0], "exits": {"trailing_pct": 0.002, "stop_loss_pct": 0.003,
                                                      "take_profit_pct": 0.003}}


def exits_config():
    return make_config(strategies=[TRAILING, *BASE_CONFIG["strategies"][1:]])


async def run_until_an_engine_exit_fills(session: PaperSession, steps: int) -> int:
    start = session.clock.now_ns()
    for i in range(steps):
        session.step(start + (i + 1) * STEP_NS)
    assert await session.writer.flush()
    return start + steps * STEP_NS


def engine_made_fills(db):
    return query(db, "SELECT COUNT(*) FROM orders WHERE filled_qty > 0 AND client_id NOT IN "
                     "(SELECT order_id FROM decisions WHERE order_id IS NOT NULL)")[0][0]


async def test_a_session_from_before_resumes_without_copies_of_its_decisions(tmp_path, monkeypatch):
    db = tmp_path / "desk.sqlite"
    with monkeypatch.context() as old_code:  # the engine as it was: exits it made were no decisions
        old_code.setattr(Engine, "_engine_exit", lambda self, *args: None)
        a = PaperSession(exits_config(), db_path=db)
        await a.open()
        await run_until_an_engine_exit_fills(a, 600)
        await a.close()
    assert engine_made_fills(db) > 0, "the bracket and trailing exits must have filled for this test to mean much"
    saved = query(db, "SELECT * FROM decisions ORDER BY seq")
    # its twin makes no exit decisions either: they would all be "twin only" differences
    report = validate(db, thresholds=exits_config().validation.model_copy(update={"proof_budget_s": 0.0}))
    assert not [d for d in report.differences if d.twin is not None and d.twin.reason.startswith("engine exit [")]

    b = PaperSession(exits_config(), db_path=db)
    await b.open()
    assert b.engine.records_exits is False
    assert len(b.engine.decisions) == len(saved)
    await run_until_an_engine_exit_fills(b, 300)
    await b.close()
    after = query(db, "SELECT * FROM decisions ORDER BY seq")
    assert after[:len(saved)] == saved  # nothing saved was rewritten
    assert [row[1] for row in after] == list(range(1, len(after) + 1))
    assert not [row for row in after if row[7].startswith("engine exit [")]


async def test_a_session_from_now_on_keeps_recording_its_exits_after_a_resume(tmp_path):
    db = tmp_path / "desk.sqlite"
    a = PaperSession(exits_config(), db_path=db)
    await a.open()
    await run_until_an_engine_exit_fills(a, 600)
    await a.close()
    assert engine_made_fills(db) == 0  # every filled order has the decision that made it
    exits = query(db, "SELECT COUNT(*) FROM decisions WHERE reason LIKE 'engine exit [%'")[0][0]
    assert exits > 0

    b = PaperSession(exits_config(), db_path=db)
    await b.open()
    assert b.engine.records_exits is True
    assert len(b.engine.decisions) == query(db, "SELECT COUNT(*) FROM decisions")[0][0]
    await b.close()
    conn = __import__("sqlite3").connect(db)
    try:
        assert predates_exit_decisions(conn, 1) is False
    finally:
        conn.close()
