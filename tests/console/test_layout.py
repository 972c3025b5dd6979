"""The console's layout at 80x24, 160x45 and 200x60 over a real session: the header on one line with equity, P&L
and the trading state, positions and open orders always on screen, no space left over, and z / n."""

from __future__ import annotations

import re

import pytest
from textual.widgets import Footer

from console.app import COMPACT_CYCLE, PANELS
from console.widgets.header import EMERGENCY_LABEL, fit
from tests.conftest import make_config
from tests.console.test_app import console_over_session, own_config_home, wait_until
from tests.console.test_console_keys import bracket_config

__all__ = ["own_config_home"]  # its autouse fixture applies here: no user theme reaches these tests

SIZES = [(80, 24), (160, 45), (200, 60)]


def shown(app, panel: str) -> bool:
    widget = app.query_one(f"#{panel}")
    return widget.display and widget.region.height >= 3 and widget.region.width >= 20


def assert_header_fits(app, width: int, *words: str) -> str:
    head = app.query_one("#header")
    assert head.size.height == 1 and head.region.y == 0
    line = head.line
    assert "\n" not in line and len(line) <= width - 2  # inside its padding: never wrapped, never cut by the terminal
    assert re.search(r"\beq(uity)? -?[\d,]+\.\d\d\b", line), line
    assert re.search(r"\bP&L (since start )?[+-][\d,]+", line), line
    for word in words:
        assert word in line, (word, line)
    return line


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_the_header_is_one_line_and_positions_and_orders_are_always_shown(size):
    async with console_over_session(bracket_config(), size=size) as (session, app, pilot, trading):
        await wait_until(pilot, lambda: app.query_one("#positions").row_count >= 1, timeout=40)
        await pilot.pause(app.REFRESH_SECONDS * 5)
        assert_header_fits(app, size[0], "ACTIVE", "PAPER")
        assert shown(app, "positions") and shown(app, "orders")
        compact = size[0] < 120
        for panel in COMPACT_CYCLE:
            assert shown(app, panel) == (not compact or panel == "events"), panel
        bottom = max(app.query_one(f"#{p}").region.bottom for p in PANELS if app.query_one(f"#{p}").display)
        assert bottom == app.query_one(Footer).region.y  # the panels take every line down to the footer
        if not compact:
            assert "mkt " in app.query_one("#header").line and "wall " in app.query_one("#header").line


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_during_an_emergency_stop_with_strategies_cooling_down_the_header_keeps_equity_pnl_and_state(
        size, tmp_path):
    config = make_config(breakers={"consecutive_losses": 1, "losses_cooldown_hours": 24.0})
    async with console_over_session(config, tmp_path / "desk.sqlite", size=size) as (session, app, pilot, trading):
        states = session.engine.guard.states
        await wait_until(pilot, lambda: any(states.state(s).value == "COOLDOWN" for s in session.engine.strategies),
                         timeout=60)
        await pilot.press("exclamation_mark", "exclamation_mark")
        assert states.state("portfolio").value == "EMERGENCY_STOPPED"
        await pilot.pause(app.REFRESH_SECONDS * 5)
        line = assert_header_fits(app, size[0], EMERGENCY_LABEL)
        app.refresh_chart()  # the stop is marked on the equity chart, lettered (no colour needed)
        chart = app.query_one("#equity")
        assert "E emergency stop" in str(chart.border_subtitle)
        if chart.display:  # the compact layout hides it
            await pilot.pause()
            drawn = str(chart.render())
            assert re.search(r"\d\d:\d\d", drawn) and "E" in drawn  # a market-time axis and the stop's letter
        if size[0] >= 160:  # and its cause, and that strategies are restricted too
            assert "(operator: emergency-stop key in the console)" in line
            assert "COOLDOWN" in line or " restricted" in line  # by name, or counted when the names do not fit


def test_the_header_gives_up_the_least_worth_first():
    from rich.text import Text

    fields = [((Text("venue name long"), 1), (Text("venue"), 3), (Text(""), 0)),
              ((Text("equity 100,000.00"), 2), (Text("eq 100,000"), 0))]
    assert fit(fields, 80).plain == "venue name long │ equity 100,000.00"
    assert fit(fields, 25).plain == "venue │ equity 100,000.00"  # the venue's long words first (worth 1)
    assert fit(fields, 18).plain == "venue │ eq 100,000"         # then equity's (2), not the venue's short (3)
    assert fit(fields, 10).plain == "eq 100,000"
    assert fit(fields, 6).plain == "eq 10…"                      # never past the width


async def test_z_maximises_the_focused_panel_and_restores_it():
    async with console_over_session(make_config(), size=(160, 45)) as (session, app, pilot, trading):
        app.query_one("#breakers").focus()
        await pilot.press("z")
        assert app.screen.maximized is app.query_one("#breakers")
        await pilot.pause()
        assert app.query_one("#breakers").region.height > 30
        await pilot.press("z")
        assert app.screen.maximized is None
        app.query_one("#equity").focus()
        await pilot.press("z")
        assert app.screen.maximized is app.query_one("#equity")


async def test_n_brings_each_hidden_panel_into_the_compact_layout_and_focuses_it():
    async with console_over_session(make_config(), size=(80, 24)) as (session, app, pilot, trading):
        for panel in [*COMPACT_CYCLE[1:], COMPACT_CYCLE[0]]:
            await pilot.press("n")
            await pilot.pause()
            assert shown(app, panel) and app.query_one(f"#{panel}").has_focus
            assert [p for p in COMPACT_CYCLE if shown(app, p)] == [panel]
            assert shown(app, "positions") and shown(app, "orders")
