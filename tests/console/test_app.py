"""The real console app, driven by Textual's Pilot over a real paper session on the simulated venue."""

import asyncio
import sqlite3
import time
from contextlib import asynccontextmanager

import pytest
from textual.widgets import DataTable

from console.app import PaperdeskApp
from console.desk import LocalDesk, ThreadDesk
from console.screens.confirm import ConfirmScreen
from engine.model.market import Bar
from engine.runtime import ideal_venue
from engine.session import PaperSession
from engine.session_thread import SessionThread
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


@pytest.fixture(autouse=True)
def own_config_home(tmp_path, monkeypatch):
    """The console remembers a theme under $XDG_CONFIG_HOME: a test's choice stays in its tmp_path, and the user's
    own choice does not reach the test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.delenv("PAPERDESK_THEME", raising=False)


async def wait_until(pilot, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await pilot.pause(0.1)


@asynccontextmanager
async def console_over_session(config, db=None, size=(140, 45), theme=None):
    """A real paper session trading in the background and the real app watching it."""
    session = PaperSession(config, db_path=db)
    await session.open()
    app = PaperdeskApp(LocalDesk(session), config, theme)
    trading = asyncio.create_task(session.run())
    try:
        async with app.run_test(size=size) as pilot:
            yield session, app, pilot, trading
    finally:
        session.stop()
        await trading


def cell_text(table: DataTable, row_key: str, column: int) -> str:
    return str(table.get_row(row_key)[column])


def header(app) -> str:
    return app.query_one("#header").line


def event_texts(app) -> list[str]:
    events = app.query_one("#events", DataTable)
    return [str(events.get_row_at(i)[2]) for i in range(events.row_count)]


async def test_console_shows_live_positions_order_flow_and_equity():
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        await wait_until(pilot, lambda: len(session.engine.fills) >= 3 and len(session.engine.equity_curve) >= 3)
        session.stop()
        await trading  # freeze the engine, then let the console catch up with it
        await pilot.pause(app.REFRESH_SECONDS * 5)
        snap = session.snapshot()
        lines = event_texts(app)
        for fill in session.engine.fills:  # every fill is in the event log, with the simulator's assumptions
            line = next(t for t in lines if t.startswith(f"fill {fill.fill_id} of {fill.client_id}"))
            assert fill.strategy in line and fill.symbol in line and fill.liquidity.value in line
            assert f"slip {fill.slippage_bps:+.1f} bp" in line
        positions = app.query_one("#positions", DataTable)
        held = [p for p in snap.positions if p.qty]
        assert positions.row_count == len(held) > 0
        for p in held:
            assert cell_text(positions, p.symbol, 1) == f"{p.qty:+,.4f}"
        strategies = app.query_one("#strategies", DataTable)
        assert [cell_text(strategies, s.name, 1) for s in snap.strategies] == ["ACTIVE"] * 3
        assert f"equity {snap.equity:,.2f}" in header(app)
        assert f"P&L since start {snap.equity - snap.starting_cash:+,.2f}" in header(app)


async def test_q_with_nothing_open_stops_the_session_and_quits():
    async with console_over_session(make_config(strategies=[])) as (session, app, pilot, trading):
        await pilot.pause(0.3)
        assert not session.stopping
        await pilot.press("q")
        await pilot.pause()
        assert session.stopping
    assert app.return_code == 0
    await asyncio.wait_for(trading, timeout=5)


async def test_q_with_positions_open_asks_first_and_says_what_happens_to_them(tmp_path):
    db = tmp_path / "desk.sqlite"
    async with console_over_session(make_config(), db) as (session, app, pilot, trading):
        await wait_until(pilot, lambda: any(p.qty for p in session.engine.account.positions.values()))
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "position(s)" in app.screen.question and f"stay saved in {db}" in app.screen.question
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert not session.stopping and app.is_running
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: session.stopping)
    assert app.return_code == 0


async def test_console_updates_rows_in_place_and_keeps_the_cursor():
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        market = app.query_one("#market", DataTable)  # three symbols, always there
        await wait_until(pilot, lambda: market.row_count == 3)
        market.focus()
        market.move_cursor(row=1)
        key_before = market.coordinate_to_cell_key(market.cursor_coordinate).row_key
        marks_before = session.engine.account.marks.copy()
        await wait_until(pilot, lambda: session.engine.account.marks != marks_before)
        await pilot.pause(1.1)
        assert market.cursor_coordinate.row == 1
        assert market.coordinate_to_cell_key(market.cursor_coordinate).row_key == key_before


async def test_a_failed_strategy_is_shown_and_the_others_keep_trading():
    strategies = [*BASE_CONFIG["strategies"],
                  {"name": "buggy", "kind": "fails_on_third_bar_test", "symbols": ["BTC/USDT"], "timeframe": "1m"}]
    async with console_over_session(make_config(strategies=strategies)) as (session, app, pilot, trading):
        await wait_until(pilot, lambda: session.engine.strategies["buggy"].status.value == "FAILED")
        decisions_then = len(session.engine.decisions)
        await pilot.pause(1.0)
        strategies_table = app.query_one("#strategies", DataTable)
        assert cell_text(strategies_table, "buggy", 1) == "FAILED"
        assert "FAILED: buggy" in header(app)
        assert app.query_one("#header").has_class("-failed")
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
        events = app.query_one("#events")
        await wait_until(pilot, lambda: "session 1 (restart 1)" in str(events.border_subtitle))
        assert "saved " in str(events.border_subtitle) and "backlog " in str(events.border_subtitle)


async def test_trading_keys_work_over_a_focused_table_and_are_saved_like_commands(tmp_path):
    db = tmp_path / "desk.sqlite"
    async with console_over_session(make_config(), db) as (session, app, pilot, trading):
        await wait_until(pilot, lambda: any(p.qty for p in session.engine.account.positions.values()))
        app.query_one("#events", DataTable).focus()     # a focused widget must not swallow the keys
        await pilot.press("h")
        assert session.engine.guard.states.state("portfolio").value == "HALTED"
        await pilot.pause(app.REFRESH_SECONDS * 5)
        head = app.query_one("#header")
        assert "HALTED (operator: halt key in the console)" in header(app)
        assert head.has_class("-restricted")
        await pilot.press("exclamation_mark")           # the first press only asks
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert session.engine.guard.states.state("portfolio").value == "HALTED"
        await pilot.press("exclamation_mark")           # and the second is the fast path
        assert session.engine.guard.states.state("portfolio").value == "EMERGENCY_STOPPED"
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await wait_until(pilot, lambda: not any(p.qty for p in session.engine.account.positions.values())
                         and not session.engine.open_orders())
        await pilot.press("r")                          # resuming an emergency stop asks too
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert session.engine.guard.states.state("portfolio").value == "EMERGENCY_STOPPED"
        await pilot.press("escape")
        await pilot.pause(app.REFRESH_SECONDS * 5)
        assert app.query_one("#header").has_class("-emergency")
        breakers = app.query_one("#breakers", DataTable)
        assert "daily_loss:portfolio" in breakers.rows and "drawdown:portfolio" in breakers.rows
        assert "state:portfolio" in breakers.rows       # the restriction itself, first
        assert breakers.coordinate_to_cell_key((0, 0)).row_key.value == "state:portfolio"
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
        # the live score is computed in a child process: on a loaded machine it takes its time
        await wait_until(pilot, lambda: session.live is not None and session.live["score"] is not None, timeout=90)
        await wait_until(pilot, lambda: "behaviour 100.0 ok (pass 85)" in header(app), timeout=60)
        strategies = app.query_one("#strategies", DataTable)
        # the portfolio's trend in the border, read from the behaviour series off the event loop
        await wait_until(pilot, lambda: "portfolio behaviour 100.0 ok █" in str(strategies.border_subtitle),
                         timeout=60)
        names = [s.name for s in session.config.strategies]
        # and each strategy scored has its own score and trend: the parity venue's are exact
        await wait_until(pilot, lambda: any(cell_text(strategies, name, 7) == "100.0" and
                                            cell_text(strategies, name, 8).startswith("█") for name in names),
                         timeout=60)
        assert "per strategy: not in" not in str(strategies.border_subtitle)


async def test_halt_and_resume_keys_cannot_talk_the_console_out_of_an_emergency_stop(tmp_path):
    async with console_over_session(make_config(), tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        await pilot.press("exclamation_mark")
        await pilot.press("exclamation_mark")
        states = session.engine.guard.states
        assert states.state("portfolio").value == "EMERGENCY_STOPPED"
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await pilot.press("h")                          # refused: halt would replace the latch
        await pilot.press("r")                          # so resume still asks
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        assert states.state("portfolio").value == "EMERGENCY_STOPPED"
        await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        await pilot.press("p")
        assert states.state("portfolio").value == "EMERGENCY_STOPPED"
        assert any("REFUSED" in line and "halt" in line for _, _, line in session.engine.events)


async def test_a_refresh_while_the_panels_are_being_removed_is_skipped_not_a_crash():
    # the refresh timers can tick once more while the app exits and its widgets go: CI saw NoMatches('#status')
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        await wait_until(pilot, lambda: app._snapshot is not None)
        await app.query_one("#header").remove()
        app.refresh_view()
        app.refresh_chart()
        assert app.is_running


def test_the_console_keeps_writing_after_its_terminal_is_gone():
    """A closed terminal (SSH drop, tmux kill-server) fails every write with EIO: Textual's output thread must not die
    of it, or the app's next writes fill its queue and block the event loop, the SIGHUP handler and the session's
    close with it (tests/console/test_tmux.py saw the session left RUNNING)."""
    import errno
    import io
    import threading

    from textual.drivers._writer_thread import WriterThread

    from console.app import TerminalOutput

    class ClosedTerminal(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.EIO, "Input/output error")

    out = TerminalOutput(ClosedTerminal())
    writer = WriterThread(out)  # type: ignore[arg-type]  # file-like, as the driver hands it
    writer.start()
    done = threading.Event()

    def frames() -> None:
        for _ in range(100):  # more than the queue holds (30)
            writer.write("\x1b[H frame")
        writer.stop()
        done.set()

    threading.Thread(target=frames, daemon=True).start()
    assert done.wait(30), "the writes blocked: the output thread died"
    assert out.lost


async def test_keys_reach_a_session_trading_on_a_loop_of_its_own_and_q_stops_it(tmp_path):
    """How `paperdesk run` runs them: the session in a thread of its own (ThreadDesk), the console on this loop."""
    db = tmp_path / "desk.sqlite"
    session = PaperSession(make_config(), db_path=db)
    runner = SessionThread(session)
    await runner.open()
    trading = asyncio.ensure_future(runner.run())
    app = PaperdeskApp(ThreadDesk(runner), session.config)
    try:
        async with app.run_test(size=(140, 45)) as pilot:
            await wait_until(pilot, lambda: any(p.qty for p in session.engine.account.positions.values()))
            await pilot.press("h")
            assert session.engine.guard.states.state("portfolio").value == "HALTED"
            assert "HALTED (operator: halt key in the console)" in header(app)  # the command's own snapshot
            await wait_until(pilot, lambda: app.query_one("#events").row_count > 0)
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))  # a position is open
            await pilot.press("y")
        await asyncio.wait_for(trading, 30)
    finally:
        runner.stop("the test is over")
        await asyncio.gather(trading, return_exceptions=True)
    with sqlite3.connect(db) as conn:
        [(command, source)] = conn.execute("SELECT command, source FROM commands").fetchall()
        assert command == "halt" and source.startswith("console")
        assert conn.execute("SELECT stop_reason FROM sessions").fetchall() == [("operator pressed q",)]
