"""console/desk_reads.py against a real session's database: an order's history and fills, a strategy as it ran, a
breaker's trips, the journal's pages and the twin's decision beside each, the behaviour differences in order."""

import asyncio
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from console import desk_reads
from engine.runtime import ideal_venue
from engine.store.database import StoreError
from tests.conftest import BASE_CONFIG, make_config
from tests.store.helpers import STEP_NS, query, stepped_session
from tests.validation.helpers import FAULT_BREAKERS_OFF

PAPER_ONLY = "PAPERDESK_TEST_PAPER_ONLY"
ACTS_ONCE = '''
import os

from engine.model.market import Bar
from engine.strategy.base import Strategy


class ActsOnceInPaper(Strategy):
    """Buys at its fifth bar while PAPERDESK_TEST_PAPER_ONLY is set. A test sets it only while the session runs, so
    the twin of a later validation holds where the session bought: a difference nothing the session recorded
    explains."""

    def on_start(self) -> None:
        self.bars = 0

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        if self.bars == 5 and os.environ.get("PAPERDESK_TEST_PAPER_ONLY") == "1":
            self.buy(bar.symbol, 1.0, reason="fifth bar")
        else:
            self.hold(bar.symbol, reason="waiting")
'''


def desk_config(strategy_file):
    """Two built-in strategies and ActsOnceInPaper on a venue slower than a bar (differences the latency explains),
    one losing trade in a row pausing a strategy (breaker trips)."""
    strategies = [s for s in BASE_CONFIG["strategies"] if s["name"] in ("sma_btc", "rsi_eth")]
    strategies.append({"name": "once_sol", "kind": f"{strategy_file}:ActsOnceInPaper", "symbols": ["SOL/USDT"],
                       "timeframe": "1m"})
    config = ideal_venue(make_config(breakers={**FAULT_BREAKERS_OFF, "consecutive_losses": 1},
                                     strategies=strategies))
    return config.model_copy(update={"venue": config.venue.model_copy(update={"latency_ms": 90_000.0})})


@contextmanager
def acting_once(folder: Path) -> Iterator[Path]:
    """ActsOnceInPaper's file in folder, with PAPER_ONLY set while the block runs the paper session and never after,
    so the twin of a later validation holds where the session bought."""
    strategy = folder / "acts_once.py"
    strategy.write_text(ACTS_ONCE)
    os.environ[PAPER_ONLY] = "1"
    try:
        yield strategy
    finally:
        del os.environ[PAPER_ONLY]


async def scored_session(db, config):
    """A stepped session that scores itself twice (as it does at its live interval), then stops."""
    session = await stepped_session(db, config, steps=800, close=False)
    try:
        for extra in range(2):
            if extra:
                now = session.clock.now_ns()
                for i in range(1, 101):
                    session.step(now + i * STEP_NS)
            assert await session.writer.flush()
            await session._score()
    finally:
        await session.close()
    return session


@pytest.fixture(scope="module")
def desk_session(tmp_path_factory):
    """(database, the stopped PaperSession, its config); once_sol bought at its fifth bar, its twin will not."""
    folder = tmp_path_factory.mktemp("desk")
    db = folder / "desk.sqlite"
    with acting_once(folder) as strategy:
        config = desk_config(strategy)
        session = asyncio.run(scored_session(db, config))
    return db, session, config


def test_an_order_shows_its_decision_its_states_in_order_and_its_fills_with_their_assumptions(desk_session):
    db, session, _ = desk_session
    sid = session.session_id
    client_id = query(db, "SELECT client_id FROM fills WHERE strategy = 'sma_btc' ORDER BY ts LIMIT 1")[0][0]
    order = desk_reads.order_detail(db, sid, client_id)
    stored = query(db, "SELECT ts, status, filled_qty FROM order_events WHERE client_id = ? ORDER BY n", (client_id,))
    assert [(s.ts, s.status, s.filled_qty) for s in order.states] == stored
    assert order.states[0].status == "SUBMITTED" and order.states[-1].status == order.status == "FILLED"
    fills = query(db, "SELECT fill_id, liquidity, basis, depth, latency_ns, slippage_bps FROM fills "
                      "WHERE client_id = ? ORDER BY ts", (client_id,))
    assert [(f.fill_id, f.liquidity, f.basis, f.depth, f.latency_ns, f.slippage_bps) for f in order.fills] == fills
    assert all(f.latency_ns == 90_000 * 1_000_000 for f in order.fills)  # the venue's configured latency
    assert order.decision is not None and order.decision.order_id == client_id
    assert order.made_by.startswith(f"decision #{order.decision.seq}: {order.decision.signal}")
    assert order.decision.indicators, "the inputs the strategy decided on"
    with pytest.raises(StoreError, match="order NOPE: session 1 has no such order"):
        desk_reads.order_detail(db, sid, "NOPE")


def test_a_strategy_shows_its_config_its_last_decision_and_the_round_trips_the_engine_counted(desk_session):
    db, session, config = desk_session
    view = {s.name: s for s in session.snapshot().strategies}["sma_btc"]
    detail = desk_reads.strategy_detail(db, session.session_id, "sma_btc")
    configured = next(s for s in config.strategies if s.name == "sma_btc")
    assert detail.kind == configured.kind and detail.symbols == configured.symbols
    assert detail.params == configured.params and detail.timeframes == [configured.timeframe]
    assert detail.settings["sizing"]["mode"] == configured.sizing.mode
    seq, reason = query(db, "SELECT seq, reason FROM decisions WHERE strategy = 'sma_btc' ORDER BY seq DESC")[0]
    assert detail.last_decision is not None and (detail.last_decision.seq, detail.last_decision.reason) == (seq, reason)
    assert detail.decisions == query(db, "SELECT COUNT(*) FROM decisions WHERE strategy = 'sma_btc'")[0][0]
    assert view.trades > 0 and (len(detail.trades), detail.metrics.wins) == (view.trades, view.wins)
    with pytest.raises(StoreError, match="strategy nope: session 1 did not run it"):
        desk_reads.strategy_detail(db, session.session_id, "nope")


def test_a_breaker_shows_its_settings_and_every_trip_it_caused(desk_session):
    db, session, config = desk_session
    tripped = query(db, "SELECT DISTINCT scope FROM state_events WHERE detail LIKE '%(consecutive_losses: %'")
    assert tripped, "one losing trade should have paused a strategy"
    scope = tripped[0][0]
    detail = desk_reads.breaker_detail(db, session.session_id, "consecutive_losses", scope)
    assert detail.settings == {"consecutive_losses": 1, "losses_cooldown_hours": config.breakers.losses_cooldown_hours,
                               "evaluate_seconds": config.breakers.evaluate_seconds,
                               "warn_at": config.breakers.warn_at}
    assert detail.events and all(e.scope == scope and "(consecutive_losses: " in e.detail for e in detail.events)
    assert any(e.kind == "COOLDOWN" for e in detail.events)
    quiet = desk_reads.breaker_detail(db, session.session_id, "drawdown", "portfolio")
    assert quiet.events == [] and quiet.settings["drawdown"] is None  # switched off in this config


def test_journal_pages_run_newest_first_through_every_decision_holds_included(desk_session):
    db, session, _ = desk_session
    sid = session.session_id
    assert desk_reads.strategy_names(db, sid) == ["sma_btc", "rsi_eth", "once_sol"]
    seen, before = [], None
    while page := desk_reads.decision_page(db, sid, "rsi_eth", before, limit=7):
        assert [d.seq for d in page] == sorted((d.seq for d in page), reverse=True)
        seen += page
        before = page[-1].seq
    stored = query(db, "SELECT seq, signal FROM decisions WHERE strategy = 'rsi_eth' ORDER BY seq DESC")
    assert [(d.seq, d.signal) for d in seen] == stored
    assert {"HOLD", "LONG"} <= {d.signal for d in seen}
    refused = query(db, "SELECT seq, denied_rule, denied_reason, denied_limit, denied_value FROM decisions "
                        "WHERE denied_rule IS NOT NULL ORDER BY seq")
    assert refused, "the cooldown refuses entries: the journal must show refusals"
    by_seq = {d.seq: d for strategy in ("sma_btc", "rsi_eth", "once_sol")
              for d in desk_reads.decision_page(db, sid, strategy, limit=10_000)}
    for seq, rule, reason, limit, value in refused:
        text = by_seq[seq].refusal()
        assert text.startswith(f"{rule}: {reason}")
        assert (limit is None or f"limit {limit:g}" in text) and (value is None or f"value {value:g}" in text)


def test_the_twin_beside_each_paper_decision_and_the_differences_unexplained_first(desk_session):
    db, session, _ = desk_session
    sid = session.session_id
    view = desk_reads.behaviour(db, sid)
    explained = [d.explained for d in view.differences]
    assert False in explained and True in explained, "the session needs both kinds for the order to mean anything"
    assert explained == sorted(explained), "unexplained (False) first"
    lone = [(d.kind, d.strategy, d.paper.signal if d.paper else None) for d in view.differences if not d.explained]
    assert ("paper only", "once_sol", "BUY") in lone
    twin = desk_reads.TwinBeside(view.report)
    rows = desk_reads.decision_page(db, sid, "once_sol", limit=1000)
    sides = {row.signal: twin.beside(row) for row in rows}
    assert sides["BUY"] is not None and not sides["BUY"].agrees and sides["BUY"].how.startswith("paper only")
    assert sides["HOLD"] is not None and sides["HOLD"].agrees  # the last hold: neither side acted
    pairs = view.report.matching.pairs
    sma = desk_reads.decision_page(db, sid, "sma_btc", limit=1000)
    matched = [twin.beside(row) for row in sma if row.signal != "HOLD"]
    assert sum(1 for side in matched if side is not None and side.how == "matched") == sum(
        1 for p in pairs if p.paper.strategy == "sma_btc")


def test_the_trend_is_the_live_scores_the_session_recorded(desk_session):
    db, session, _ = desk_session
    stored = query(db, "SELECT market_ts, score FROM behaviour_scores ORDER BY wall_ns")
    assert stored and all(score is not None for _, score in stored)  # one per _score() the session's scorer ran
    assert desk_reads.behaviour_trend(db, session.session_id) == stored
    assert json.loads(query(db, "SELECT summary FROM behaviour_scores")[0][0])["components"]


def test_a_missing_or_foreign_file_is_one_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no such database"):
        desk_reads.order_detail(tmp_path / "none.sqlite", 1, "O1")
    other = tmp_path / "notes.sqlite"
    other.write_text("not a database")
    with pytest.raises(StoreError, match=str(other)):
        desk_reads.decision_page(other, 1, "sma_btc")


async def test_a_validation_in_a_child_process_is_the_one_in_process_and_its_errors_come_back(desk_session):
    db, session, _ = desk_session
    sid = session.session_id
    here, there = desk_reads.behaviour(db, sid), await desk_reads.in_child(desk_reads.behaviour, db, sid)
    assert there.report.as_dict() == here.report.as_dict() and there.trend == here.trend
    assert [d.as_dict() for d in there.differences] == [d.as_dict() for d in here.differences]
    with pytest.raises(StoreError, match="order NOPE: session 1 has no such order"):
        await desk_reads.in_child(desk_reads.order_detail, db, sid, "NOPE")


def children(name):
    """This process's live children whose command line has name (Linux: read from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):  # not a process, or one that ended meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and name in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z":
            out.append(int(entry.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
async def test_a_validation_cancelled_stops_its_child_process(desk_session):
    db, session, _ = desk_session
    task = asyncio.create_task(desk_reads.in_child(desk_reads.behaviour, db, session.session_id))
    deadline = time.monotonic() + 60
    while not children("console.desk_reads"):
        assert time.monotonic() < deadline, "the child process never started"
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert children("console.desk_reads") == []
