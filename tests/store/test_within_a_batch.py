"""A running session lets the loop in between two market events of one feed batch: a key pressed there is saved
after the event it followed and replayed there, and nothing of the open batch is written before the batch ends."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.breakers.trading_state import TradingState
from engine.session import PaperSession
from tests.conftest import make_config, until
from tests.store.helpers import engine_state, query


async def within_a_batch(session: PaperSession, whole_batches_before: int) -> None:
    """Wait, letting the running session go on, until it is inside a batch after that many whole ones."""
    for _ in range(whole_batches_before):
        while session.journal is None or not session.journal.batch_open:
            await asyncio.sleep(0)
        while session.journal.batch_open:
            await asyncio.sleep(0)
    while session.journal is None or not session.journal.batch_open:
        await asyncio.sleep(0)


def saved_cut(db) -> tuple[int, int]:
    """The last market event saved, and the one after which the saved venue state was taken."""
    return query(db, "SELECT (SELECT MAX(seq) FROM market_data), (SELECT market_seq FROM venue_state)")[0]


async def resumed(config, db) -> tuple[dict[str, Any], TradingState]:
    session = PaperSession(config, db_path=db)
    await session.open()
    try:
        return engine_state(session), session.engine.guard.states.state("portfolio")
    finally:
        await session.close()


async def test_a_halt_pressed_within_a_batch_is_saved_where_a_resume_replays_it(tmp_path, monkeypatch):
    monkeypatch.setattr("engine.session.LET_IN_EVERY_S", 0.0)  # the loop comes in after every market event
    db = tmp_path / "desk.sqlite"
    config = make_config()
    session = PaperSession(config, db_path=db)
    seen: dict[str, Any] = {}
    ended = [0]
    end_batch = session._batch_end

    def counted(batch) -> None:
        ended[0] += 1
        end_batch(batch)

    monkeypatch.setattr(session, "_batch_end", counted)

    async def press_within_a_batch() -> None:
        await within_a_batch(session, 50)  # a few batches in
        await until(lambda: saved_cut(db)[1] is not None, 20.0)  # the writer takes rows between batches only
        # a flush from within a batch, still open when it is done: it takes nothing, so it only waits (and the session
        # goes on) while the writer's own flush holds the lock
        for _ in range(20):
            await within_a_batch(session, 0)
            before = ended[0]
            assert await session.writer.flush()
            if ended[0] == before:
                break
        else:
            raise AssertionError("every flush from within a batch outlasted it: it wrote (part of) an open batch?")
        seen["saved"] = saved_cut(db)
        seen["applied"] = session.journal.market_seq
        seen["halt"] = session.operator_command("halt", {}, "drill", "console")
        await asyncio.sleep(0.3)
        session.stop()

    pressing = asyncio.create_task(press_within_a_batch())
    await session.run(duration=30)
    await asyncio.wait_for(pressing, 1.0)  # it never saw a batch open: the session did not let the loop in

    saved_seq, batch_end_seq = seen["saved"]
    assert saved_seq == batch_end_seq < seen["applied"]  # the open batch's events were not written
    assert seen["halt"][0]
    assert query(db, "SELECT market_seq FROM commands") == [(seen["applied"],)]
    assert session.engine.guard.states.state("portfolio") is TradingState.HALTED
    assert await resumed(config, db) == (engine_state(session), TradingState.HALTED)


async def test_a_session_cancelled_within_a_batch_ends_the_batch_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr("engine.session.LET_IN_EVERY_S", 0.0)
    db = tmp_path / "desk.sqlite"
    config = make_config()
    session = PaperSession(config, db_path=db)
    trading = asyncio.create_task(session.run(duration=30))
    await within_a_batch(session, 30)
    trading.cancel()
    await asyncio.gather(trading, return_exceptions=True)
    assert trading.cancelled()
    saved_seq, batch_end_seq = saved_cut(db)
    assert saved_seq == batch_end_seq == session.journal.market_seq
    assert (await resumed(config, db))[0] == engine_state(session)
