"""Exits the engine makes (bracket stop-loss and take-profit fills, trailing stops, breaker and emergency-stop
close-outs) are decisions of the strategy whose position they close, in paper and in the twin, matched and scored."""

from __future__ import annotations

import copy
import sqlite3
from pathlib import Path

from engine.config import AppConfig
from engine.model.decision import decision_origin
from engine.model.order import OrderOrigin, OrderType
from engine.runtime import ideal_venue
from engine.validation.validate import validate
from tests.conftest import BASE_CONFIG, make_config
from tests.store.helpers import stepped_session
from tests.validation.helpers import FAULT_BREAKERS_OFF

ENGINE_ORIGINS = {"bracket stop-loss", "bracket take-profit", "trailing stop"}


def bracketed_config(**breakers: object) -> AppConfig:
    """The test strategies with tight brackets (sma, rsi) and a trailing stop (bollinger), on the parity venue."""
    strategies = copy.deepcopy(BASE_CONFIG["strategies"])
    strategies[0]["exits"] = {"stop_loss_pct": 0.0015, "take_profit_pct": 0.002}
    strategies[1]["exits"] = {"stop_loss_pct": 0.002, "take_profit_pct": 0.0025}
    strategies[2]["exits"] = {"trailing_pct": 0.002}
    return ideal_venue(make_config(strategies=strategies, breakers={**FAULT_BREAKERS_OFF, **breakers}))


def stored_decisions(db: Path) -> list[tuple[int, str, str, str, str, str | None]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT ts, strategy, symbol, signal, reason, order_id FROM decisions "
                            "ORDER BY seq").fetchall()
    finally:
        conn.close()


async def test_every_exit_the_engine_makes_is_one_stored_decision_with_its_origin(tmp_path):
    db = tmp_path / "brackets.sqlite"
    session = await stepped_session(db, bracketed_config())
    engine = session.engine
    made = {o.client_id: o for o in engine.orders.values()
            if (o.origin is OrderOrigin.EXIT and o.filled_qty > 0) or o.origin is OrderOrigin.FLATTEN}
    exits = {row[5]: row for row in stored_decisions(db) if decision_origin(row[4]) != "strategy"}
    assert set(exits) == set(made)  # one decision per engine-made exit, no other
    origins = set()
    for client_id, (ts, strategy, symbol, signal, reason, _) in exits.items():
        order = made[client_id]
        origin = decision_origin(reason)
        origins.add(origin)
        assert (strategy, symbol, signal) == (order.strategy, order.symbol, "FLAT")
        if order.origin is OrderOrigin.EXIT:  # decided when it filled, named by its leg
            assert origin == ("bracket stop-loss" if order.type is OrderType.STOP else "bracket take-profit")
            assert ts == min(f.ts for f in engine.fills if f.client_id == client_id)
        else:
            assert origin == "trailing stop" and ts == order.created_ns
    assert origins == ENGINE_ORIGINS  # the session exercised each kind


async def test_engine_exits_are_matched_and_scored_and_an_ideal_session_still_scores_100(tmp_path):
    db = tmp_path / "brackets.sqlite"
    await stepped_session(db, bracketed_config())
    report = validate(db)
    assert report.score.score == 100.0 and report.differences == []
    assert report.matching is not None
    matched = [(decision_origin(p.paper.reason), decision_origin(p.twin.reason)) for p in report.matching.pairs]
    engine_made = [pair for pair in matched if pair[0] != "strategy"]
    assert {a for a, _ in engine_made} == ENGINE_ORIGINS and all(a == b for a, b in engine_made)
    paper_exits = sum(1 for row in stored_decisions(db) if decision_origin(row[4]) != "strategy")
    assert len(engine_made) == paper_exits  # every one of them scored, paired with the twin's


async def test_a_breaker_close_is_a_decision_on_both_sides(tmp_path):
    db = tmp_path / "drawdown.sqlite"
    # no brackets: the strategies hold a position almost always, so the drawdown trip has one to close
    session = await stepped_session(db, ideal_venue(make_config(breakers={**FAULT_BREAKERS_OFF, "drawdown": 0.001})))
    closes = [row for row in stored_decisions(db) if decision_origin(row[4]) == "breaker drawdown close"]
    assert closes
    assert all(session.engine.orders[row[5]].origin is OrderOrigin.FLATTEN for row in closes)
    report = validate(db)
    assert report.score.score == 100.0 and report.differences == []


async def test_an_emergency_stop_close_is_a_paper_decision_the_report_names_by_origin(tmp_path):
    db = tmp_path / "stopped.sqlite"
    # no brackets: the strategies hold a position almost always, so the emergency stop has some to close
    session = await stepped_session(db, ideal_venue(make_config(breakers=FAULT_BREAKERS_OFF)), steps=900, close=False)
    held = [key for key, qty in session.engine.account.strategy_qty.items() if qty]
    assert held, "the test needs an open position to close"
    ok, _ = session.operator_command("emergency-stop", {}, "test", "test")
    assert ok
    await session.close()
    closes = [row for row in stored_decisions(db) if decision_origin(row[4]) == "emergency stop close"]
    assert sorted((row[1], row[2]) for row in closes) == sorted(held)
    report = validate(db)
    lines = "\n".join(report.lines())
    for _, strategy, symbol, *_ in closes:
        assert f"paper only: {strategy} {symbol} | paper: FLAT [emergency stop close]" in lines
    # the twin has no operator: replayed with the emergency stop put back, it closes the same positions
    assert report.differences and all([c.kind for c in d.causes] == ["operator"] for d in report.differences)
