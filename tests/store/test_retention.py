"""A saved session holds only the newest part of its history in memory; its counts, the database and a resume still
have all of it."""

from __future__ import annotations

from dataclasses import replace

from engine import retention
from engine.model.event_log import EventLevel
from engine.model.venue_event import VenueEvent, VenueEventKind
from engine.retention import forget_history
from engine.session import PaperSession
from tests.conftest import make_config
from tests.store.helpers import LADDER, query, stepped_session

SMALL = {"KEEP_ENDED_ORDERS": 3, "KEEP_DECISIONS": 4, "KEEP_FILLS": 2, "KEEP_MARKS": 5}


def keep_little(monkeypatch) -> None:
    for name, value in SMALL.items():
        monkeypatch.setattr(retention, name, value)


def saved_counts(db) -> dict[str, int]:
    return {table: query(db, f"SELECT COUNT(*) FROM {table}")[0][0] for table in ("orders", "fills", "decisions")}


def shown_counts(session: PaperSession) -> dict[str, int]:
    snap = session.snapshot()
    return {"orders": snap.orders, "fills": snap.fills, "decisions": snap.decisions}


async def test_a_saved_session_forgets_beyond_its_window_and_still_counts_everything(tmp_path, monkeypatch):
    keep_little(monkeypatch)
    db = tmp_path / "desk.sqlite"
    session = await stepped_session(db, make_config(strategies=[LADDER]), steps=900, close=False)
    engine = session.engine
    before = shown_counts(session)
    assert before["orders"] > 10 and before["fills"] > 4 and before["decisions"] > 10
    newest_decision, newest_fill = engine.decisions[-1], engine.fills[-1]
    open_ids = {o.client_id for o in engine.open_orders()}

    forget_history(engine, session.journal)

    assert len(engine.decisions) == 4 and engine.decisions[-1] is newest_decision
    assert len(engine.fills) == 2 and engine.fills[-1] is newest_fill
    assert len(engine.equity_curve) == 5
    ended = [o for o in engine.orders.values() if not o.is_open]
    assert len(ended) == 3 and open_ids <= set(engine.orders)  # an open order is never forgotten
    assert shown_counts(session) == before
    await session.close()
    assert saved_counts(db) == before


async def test_a_resume_of_a_session_that_forgot_has_its_whole_history(tmp_path, monkeypatch):
    keep_little(monkeypatch)
    db = tmp_path / "desk.sqlite"
    config = make_config(strategies=[LADDER])
    session = await stepped_session(db, config, steps=600, close=False)
    forget_history(session.engine, session.journal)
    counts = shown_counts(session)
    await session.close()

    resumed = PaperSession(config, db_path=db)
    await resumed.open()
    try:
        assert shown_counts(resumed) == counts == saved_counts(db)
        assert len(resumed.engine.decisions) == counts["decisions"]  # replayed in full, forgotten as it trades on
    finally:
        await resumed.close()


async def test_an_order_a_real_venue_may_still_report_on_is_kept_until_its_grace_ends(tmp_path):
    db = tmp_path / "desk.sqlite"
    session = await stepped_session(db, make_config(strategies=[LADDER]), steps=600, close=False)
    oms = session.engine.oms
    ends = list(oms._ends)
    cutoff = ends[len(ends) // 2][0]
    older = {cid for ts, cid in ends if ts < cutoff}
    assert older and len(older) < len(ends)

    gone = oms.forget_ended(0, cutoff)

    assert set(gone) == older and not older & set(oms.orders)
    assert {cid for ts, cid in ends if ts >= cutoff} <= set(oms.orders)
    # a venue's report on a forgotten order is named and ignored, not applied
    lines = []
    oms.log = lambda level, text: lines.append((level, text))
    cid = gone[0]
    fill = replace(session.engine.fills[0], fill_id=f"{cid}-late", client_id=cid)
    assert oms.apply(VenueEvent(VenueEventKind.FILLED, cid, cutoff, fill=fill)) is None
    assert lines == [(EventLevel.WARN, f"venue reported FILLED for unknown order {cid}; ignored")]
    await session.close()


async def test_the_running_session_forgets_and_an_unsaved_one_keeps_everything(tmp_path, monkeypatch):
    keep_little(monkeypatch)
    monkeypatch.setattr("engine.session.FORGET_SECONDS", 0.0)
    config = make_config(strategies=[LADDER])
    saved = PaperSession(config, db_path=tmp_path / "desk.sqlite")
    await saved.run(duration=1.5)
    assert saved.engine.forgotten.decisions > 0 and len(saved.engine.decisions) <= 4
    assert shown_counts(saved) == saved_counts(tmp_path / "desk.sqlite")

    unsaved = PaperSession(config)
    await unsaved.run(duration=1.5)
    assert unsaved.engine.forgotten.decisions == 0
    assert len(unsaved.engine.decisions) == unsaved.snapshot().decisions > 4
    assert len(unsaved.engine.orders) == unsaved.snapshot().orders
