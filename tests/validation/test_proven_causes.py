"""Causes proven by counterfactual replay: a difference is explained only when the twin, replayed with what paper
recorded put back, makes paper's decision there; the test replays each proven cause itself, from the start."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from engine.breakers.trading_state import Restriction, TradingState
from engine.clock import SimClock
from engine.config import FeedGapConfig
from engine.core import Engine
from engine.data.bars import timeframe_ns
from engine.execution.fill_model import FillModel
from engine.model.market import BookSnapshot
from engine.model.order import OrderSide, OrderStatus
from engine.validation.causes import Explainer
from engine.validation.counterfactual import Condition, reach, replay_with, reproduces
from engine.validation.records import SessionRecords, load_session
from engine.validation.twin import Twin, TwinBroker, TwinVenue, run_twin
from engine.validation.validate import DriftError, validate
from tests.conftest import btc
from tests.store.helpers import stepped_session
from tests.validation.helpers import venue_config

LATE_AND_SLIPPING = {"latency_ms": 2000.0, "slippage": True}
GAPS = [FeedGapConfig(start_minutes=25, minutes=6), FeedGapConfig(start_minutes=50, minutes=3)]


def tolerances(records: SessionRecords) -> dict[str, int]:
    bars = records.config.validation.tolerance_bars
    return {s.name: int(bars * timeframe_ns(s.timeframe)) for s in records.config.strategies}


def explainer(records: SessionRecords, twin: Twin, budget_s: float = 60.0) -> Explainer:
    frames = {s.name: timeframe_ns(s.timeframe) for s in records.config.strategies}
    span = max(1, (records.last_ts or 0) - records.market_start_ns)
    return Explainer(records, records.decisions, twin.log.decisions, twin.fills(), [], frames, tolerances(records),
                     budget_s, twin.seconds / span)


async def test_every_difference_of_a_late_slipping_gapped_session_has_a_cause_its_replay_proves(tmp_path):
    db = tmp_path / "desk.sqlite"
    await stepped_session(db, venue_config(feed_gaps=GAPS, **LATE_AND_SLIPPING))
    report = validate(db)
    assert report.differences and all(d.explained for d in report.differences), "\n".join(report.lines())
    records = load_session(db)
    twin = run_twin(records)
    why = explainer(records, twin)
    tolerance = tolerances(records)
    for d in report.differences:
        target_paper = None if d.kind == "twin only" else d.paper
        target_twin = d.twin if d.kind == "twin only" else None
        stamps = [r.ts for r in (d.paper, d.twin) if r is not None]
        proven = {(c.kind, c.ts, c.text) for c in d.causes}
        first, second = why.candidate_sets(d.strategy, d.symbol, min(stamps), max(stamps))
        conditions = list({(c.kind, c.ts, c.text): c for s in first + second for c in s
                           if (c.kind, c.ts, c.text) in proven}.values())
        assert len(conditions) == len(d.causes)
        end = max(stamps) + tolerance[d.strategy]
        # without the cause the twin parts from paper there; with it put back, from the start, it decides as paper did
        assert not reproduces(records.decisions, twin.log.decisions, target_paper, target_twin, tolerance[d.strategy])
        with_cause = replay_with(records, conditions, reach(conditions, end, tolerance[d.strategy]))
        assert reproduces(records.decisions, with_cause, target_paper, target_twin, tolerance[d.strategy]), d
    assert "cause (proven by replay)" in "\n".join(report.lines())


def changed_parameters(db: Path, copy: Path) -> None:
    """A copy of db whose stored config runs sma_btc on other moving averages than the session did."""
    shutil.copy(db, copy)
    with sqlite3.connect(copy) as conn:
        (text,) = conn.execute("SELECT config_json FROM sessions WHERE id = 1").fetchone()
        config = json.loads(text)
        sma = next(s for s in config["strategies"] if s["name"] == "sma_btc")
        assert (sma["params"]["fast"], sma["params"]["slow"]) == (3, 8)
        sma["params"].update(fast=2, slow=5)
        conn.execute("UPDATE sessions SET config_json = ? WHERE id = 1", (json.dumps(config),))


async def test_a_session_replayed_with_changed_parameters_has_nothing_explained_by_its_execution(tmp_path):
    # the twin of a changed strategy is not the session's: a replay with paper's latency or fills put back can happen
    # to land on paper's decision, which proves nothing. So the change is caught before any replay: validate refuses
    # it by name, and told to go on, proves nothing and counts every difference unexplained
    db, changed = tmp_path / "desk.sqlite", tmp_path / "changed.sqlite"
    await stepped_session(db, venue_config(**LATE_AND_SLIPPING))
    changed_parameters(db, changed)
    with pytest.raises(DriftError, match="sma_btc") as refused:
        validate(changed)
    assert "fast" in str(refused.value) and "slow" in str(refused.value)
    report = validate(changed, allow_drift=True)
    assert len([d for d in report.differences if d.strategy == "sma_btc"]) > 3
    for d in report.differences:
        assert not d.explained and not d.causes, d


async def test_a_difference_whose_replays_would_exceed_the_budget_is_not_proven(tmp_path):
    db = tmp_path / "desk.sqlite"
    await stepped_session(db, venue_config(feed_gaps=GAPS[:1], **LATE_AND_SLIPPING))
    records = load_session(db)
    thresholds = records.config.validation.model_copy(update={"proof_budget_s": 1e-9})
    report = validate(db, thresholds=thresholds)
    assert report.differences
    for d in report.differences:
        assert not d.explained and d.proof.startswith("not proven: its replays would take about") and d.hints
    assert "cause: not proven" in "\n".join(report.lines())


def twin_desk() -> tuple[Engine, TwinVenue, SimClock]:
    """An engine on the twin's venue (no latency, market orders at the mid) holding one BTC book."""
    clock = SimClock()
    broker = TwinBroker(clock, {"BTC/USDT": btc()}, FillModel(0, slippage=False), 1_000_000.0)
    engine = Engine(clock, [btc()], 1_000_000.0, broker=broker)
    clock.advance_to(1_000)
    engine.process(BookSnapshot(1_000, "BTC/USDT", ((99.0, 1.0),), ((101.0, 1.0),)))
    venue = broker.simulator
    assert isinstance(venue, TwinVenue)
    return engine, venue, clock


def test_the_twins_venue_gives_an_order_the_latency_price_share_or_refusal_paper_had_and_no_other_order():
    engine, venue, clock = twin_desk()
    late, priced, half, refused = ((("s", "BTC/USDT", "BUY", "MARKET", 1_000 + i)) for i in range(4))
    venue.treatment.latency_ns[late] = 2_000_000_000
    venue.treatment.price[priced] = 100.7
    venue.treatment.filled[half] = 0.5
    venue.treatment.rejected[refused] = "paper's venue said no"
    orders = []
    for i in range(4):
        clock.advance_to(1_000 + i)
        orders.append(engine.submit_order("s", "BTC/USDT", OrderSide.BUY, 0.2))
    clock.advance_to(1_010)  # the same order a moment later is another order: the twin's own treatment
    plain = engine.submit_order("s", "BTC/USDT", OrderSide.BUY, 0.2)
    assert orders[0].status is OrderStatus.SUBMITTED  # still on its way, 2 s
    assert (orders[1].status, orders[1].avg_fill_price) == (OrderStatus.FILLED, 100.7)
    assert orders[2].filled_qty == pytest.approx(0.1)
    assert (orders[3].status, orders[3].reason) == (OrderStatus.REJECTED, "paper's venue said no")
    assert (plain.status, plain.avg_fill_price) == (OrderStatus.FILLED, 100.0)
    clock.advance_to(1_000 + 2_000_000_001)
    engine.process(BookSnapshot(clock.now_ns(), "BTC/USDT", ((99.0, 1.0),), ((101.0, 1.0),)))
    assert orders[0].status is OrderStatus.FILLED and orders[0].avg_fill_price == 100.0
    assert [f.latency_ns for f in engine.fills if f.client_id == orders[0].client_id] == [2_000_000_000]
    assert orders[2].status is OrderStatus.CANCELED and "as paper's was" in orders[2].reason


async def test_a_breakers_state_and_a_refusal_put_back_hold_the_twin_as_paper_was_held(tmp_path):
    db = tmp_path / "ideal.sqlite"
    await stepped_session(db, venue_config())
    records = load_session(db)
    entries = [d for d in records.decisions if d.strategy == "sma_btc" and d.order_id is not None]
    assert len(entries) >= 3
    first, refused = entries[0], entries[1]
    until = first.ts + 2 * 60_000_000_000
    cooldown = Restriction(TradingState.COOLDOWN, "consecutive_losses", "5 losing trades in a row", first.ts, until)
    held = Condition("trading_state", first.ts, "sma_btc COOLDOWN", state=("sma_btc", cooldown))
    no = Condition("refusal", refused.ts, "refused", refusal=("max_order_qty", "too big", "sma_btc", "BTC/USDT"))
    replayed = {(d.strategy, d.ts): d for d in replay_with(records, [held, no], refused.ts + 60_000_000_000)}
    # under the cooldown the entry is refused as paper's would have been; it ends when paper's did
    assert replayed[("sma_btc", first.ts)].denied_rule == "trading_state"
    after = [d for d in replay_with(records, [held], records.last_ts or 0)
             if d.strategy == "sma_btc" and until < d.ts and d.order_id is not None]
    assert after and all(d.denied_rule is None for d in after)
    assert replayed[("sma_btc", refused.ts)].denied_rule == "max_order_qty"
    plain = {(d.strategy, d.ts): d for d in run_twin(records).log.decisions}
    assert plain[("sma_btc", first.ts)].denied_rule is None and plain[("sma_btc", refused.ts)].denied_rule is None
