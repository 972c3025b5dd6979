"""The real console app, driven by Textual's Pilot over a real paper session on the simulated venue."""

import asyncio
import time
from contextlib import asynccontextmanager

from textual.widgets import DataTable, Static

from console.app import PaperdeskApp
from engine.model.market import Bar
from engine.runtime import ideal_venue
from engine.session import PaperSession
from engine.strategy.base import Strategy
from engine.strategy.registry import register
from tests.conftest import BASE_CONFIG, make_config


@register
class FailsOnThirdBar(Strategy):
    kind = "fails_on_third_bar_test"

    def on_start(self) -> None:
        self.bars = 0

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        if self.bars == 3:
            raise RuntimeError("strategy bug")
        self.hold(bar.symbol, reason="waiting")


async def wait_until(pilot, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.1)


@asynccontextmanager
async def console_over_session(config, db=None):
    """A real paper session trading in the background and the real app watching it."""
    session = PaperSession(config, db_path=db)
    await session.open()
    app = PaperdeskApp(session)
    trading = asyncio.create_task(session.run())
    try:
        async with app.run_test(size=(140, 45)) as pilot:
            yield session, app, pilot, trading
    finally:
        session.stop()
        await trading


def cell_text(table: DataTable, row_key: str, column: int) -> str:
    return str(table.get_row(row_key)[column])


async def test_console_shows_live_positions_fills_and_equity():
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        await wait_until(pilot, lambda: len(session.engine.fills) >= 3 and len(session.engine.equity_curve) >= 3)
        session.stop()
        await trading  # freeze the engine, then let the console catch up with it
        await pilot.pause(app.REFRESH_SECONDS + 0.3)
        snap = session.snapshot()
        fills = app.query_one("#fills", DataTable)
        assert fills.row_count == len(session.engine.fills)
        for fill in session.engine.fills:
            assert cell_text(fills, fill.fill_id, 1) == fill.strategy
            assert cell_text(fills, fill.fill_id, 2) == fill.symbol
            # what the simulator assumed is on screen: liquidity, basis, depth, slippage
            assert cell_text(fills, fill.fill_id, 7) == fill.liquidity.value
            assert cell_text(fills, fill.fill_id, 9) == f"{fill.depth:,.4f}"
            assert cell_text(fills, fill.fill_id, 10) == f"{fill.slippage_bps:+,.1f}"
        positions = app.query_one("#positions", DataTable)
        assert positions.row_count == len(snap.positions) > 0
        for p in snap.positions:
            assert cell_text(positions, p.symbol, 1) == f"{p.qty:+,.4f}"
        strategies = app.query_one("#strategies", DataTable)
        assert [str(strategies.get_row(s.name)[2]) for s in snap.strategies] == ["RUNNING"] * 3
        status = str(app.query_one("#status", Static).render())
        assert "simulated venue" in status and f"equity {snap.equity:,.2f}" in status
        assert f"fills {snap.fills}" in status


async def test_q_stops_the_session_and_quits():
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        await pilot.pause(0.3)
        assert not session.stopping
        await pilot.press("q")
        await pilot.pause()
        assert session.stopping
    assert app.return_code == 0
    await asyncio.wait_for(trading, timeout=5)


async def test_console_updates_rows_in_place_and_keeps_the_cursor():
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        positions = app.query_one("#positions", DataTable)
        await wait_until(pilot, lambda: positions.row_count >= 2)
        positions.focus()
        positions.move_cursor(row=1)
        key_before = positions.coordinate_to_cell_key(positions.cursor_coordinate).row_key
        marks_before = session.engine.account.marks.copy()
        await wait_until(pilot, lambda: session.engine.account.marks != marks_before)
        await pilot.pause(1.1)
        assert positions.cursor_coordinate.row == 1
        assert positions.coordinate_to_cell_key(positions.cursor_coordinate).row_key == key_before


async def test_a_failed_strategy_is_shown_and_the_others_keep_trading():
    strategies = [*BASE_CONFIG["strategies"],
                  {"name": "buggy", "kind": "fails_on_third_bar_test", "symbols": ["BTC/USDT"], "timeframe": "1m"}]
    async with console_over_session(make_config(strategies=strategies)) as (session, app, pilot, trading):
        await wait_until(pilot, lambda: session.engine.strategies["buggy"].status.value == "FAILED")
        decisions_then = len(session.engine.decisions)
        await pilot.pause(1.0)
        strategies_table = app.query_one("#strategies", DataTable)
        assert str(strategies_table.get_row("buggy")[2]) == "FAILED"
        assert "FAILED: buggy" in str(app.query_one("#status", Static).render())
        assert app.query_one("#status").has_class("-failed")
        assert len(session.engine.decisions) > decisions_then  # the others go on


async def test_the_app_exits_when_the_session_ends(monkeypatch):
    from console import app as app_module

    original = app_module.PaperdeskApp.run_async

    async def headless_run_async(self, **kwargs):  # the real app, without a terminal
        return await original(self, headless=True, **kwargs)

    monkeypatch.setattr(app_module.PaperdeskApp, "run_async", headless_run_async)
    rc = await asyncio.wait_for(app_module.run_console(make_config(), duration=1.5), timeout=30)
    assert rc == 0


async def test_console_shows_the_resumed_session_and_what_the_store_saved(tmp_path):
    db = tmp_path / "desk.sqlite"
    await PaperSession(make_config(), db_path=db).run(duration=0.5)
    async with console_over_session(make_config(), db) as (session, app, pilot, trading):
        assert session.recovered is not None
        await wait_until(pilot, lambda: session.writer.rows_committed > 0)
        await pilot.pause(app.REFRESH_SECONDS + 0.1)
        status = str(app.query_one("#status", Static).render())
        assert "session 1 (restart 1)" in status and "saved " in status and "backlog " in status


async def test_trading_keys_work_over_a_focused_table_and_are_saved_like_commands(tmp_path):
    db = tmp_path / "desk.sqlite"
    async with console_over_session(make_config(), db) as (session, app, pilot, trading):
        await wait_until(pilot, lambda: any(p.qty for p in session.engine.account.positions.values()))
        app.query_one("#fills", DataTable).focus()      # a focused widget must not swallow the keys
        await pilot.press("h")
        assert session.engine.guard.states.state("portfolio").value == "HALTED"
        await pilot.pause(app.REFRESH_SECONDS + 0.2)
        status = app.query_one("#status", Static)
        assert "TRADING HALTED (operator: halt key in the console)" in str(status.render())
        assert status.has_class("-restricted")
        await pilot.press("exclamation_mark")           # the first press only asks
        assert session.engine.guard.states.state("portfolio").value == "HALTED"
        await pilot.press("exclamation_mark")
        assert session.engine.guard.states.state("portfolio").value == "EMERGENCY_STOPPED"
        await wait_until(pilot, lambda: not any(p.qty for p in session.engine.account.positions.values())
                         and not session.engine.open_orders())
        await pilot.press("r")                          # resuming an emergency stop asks too
        assert session.engine.guard.states.state("portfolio").value == "EMERGENCY_STOPPED"
        await pilot.pause(app.REFRESH_SECONDS + 0.2)
        assert app.query_one("#status", Static).has_class("-emergency")
        breakers = app.query_one("#breakers", DataTable)
        assert "daily_loss:portfolio" in breakers.rows and "drawdown:portfolio" in breakers.rows
    from tests.store.helpers import query

    rows = query(db, "SELECT command, source, ok FROM commands ORDER BY id")
    assert [r[0] for r in rows] == ["halt", "emergency-stop"] and all(r[2] == 1 for r in rows)
    assert rows[0][1].startswith("console ")
    resumed = PaperSession(make_config(), db_path=db)
    await resumed.open()  # the restart replays the console's commands: still latched
    assert resumed.engine.guard.states.state("portfolio").value == "EMERGENCY_STOPPED"
    await resumed.close()


async def test_console_shows_the_live_behaviour_score_against_the_backtest(tmp_path):
    config = ideal_venue(make_config(validation={"live_interval_seconds": 1.0}))
    async with console_over_session(config, tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        await wait_until(pilot, lambda: session.live is not None and session.live["score"] is not None, timeout=40)
        await wait_until(pilot, lambda: "behaviour 100.00/100 vs backtest" in
                         str(app.query_one("#status", Static).render()))


async def test_halt_and_resume_keys_cannot_talk_the_console_out_of_an_emergency_stop(tmp_path):
    async with console_over_session(make_config(), tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        await pilot.press("exclamation_mark")
        await pilot.press("exclamation_mark")
        states = session.engine.guard.states
        assert states.state("portfolio").value == "EMERGENCY_STOPPED"
        await pilot.press("h")                          # refused: halt would replace the latch
        await pilot.press("r")                          # so resume still asks for a second press
        assert states.state("portfolio").value == "EMERGENCY_STOPPED"
        await pilot.press("p")
        assert states.state("portfolio").value == "EMERGENCY_STOPPED"
        assert any("REFUSED" in line and "halt" in line for _, _, line in session.engine.events)


async def test_a_refresh_while_the_tables_are_being_removed_is_skipped_not_a_crash():
    # the refresh timers can tick once more while the app exits and its widgets go: CI saw NoMatches('#status')
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        await wait_until(pilot, lambda: app._snapshot is not None)
        await app.query_one("#status").remove()
        app.refresh_view()
        app.refresh_chart()
        assert app.is_running
