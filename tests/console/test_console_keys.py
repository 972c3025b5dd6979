"""Every key of the console and its palette entries, driven by Pilot over a real paper session (simulated venue)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from textual.widgets import DataTable, Input

from console.app import PaperdeskApp, check_keys
from console.cli import main
from console.desk import LocalDesk
from console.screens.confirm import ConfirmScreen
from console.screens.help import HelpScreen
from console.theme_store import saved_theme_file, start_theme
from engine.config import ConfigError
from engine.session import PaperSession
from engine.snapshot import EventView
from engine.store.sessions import config_text
from tests.conftest import BASE_CONFIG, make_config
from tests.console.test_app import console_over_session, event_texts, own_config_home, wait_until
from tests.console.test_help_and_palette import name_of, run_palette_command
from tests.store.helpers import query

__all__ = ["own_config_home"]  # its autouse fixture applies here: the theme a test picks stays in its tmp_path

CALM = {"daily_loss": None, "drawdown": None, "consecutive_losses": None, "volatility_spike": None,
        "correlation": None}  # no breaker trips in the middle of a key's test


def calm_config(**sections):
    return make_config(breakers=CALM, **sections)


def bracket_config(**sections):
    """Every entry keeps a stop and a target working, far enough and on a slow enough market (60x) that they are
    still open when the key comes: open orders to cancel."""
    strategies = [{**s, "exits": {"stop_loss_pct": 0.05, "take_profit_pct": 0.1}} for s in BASE_CONFIG["strategies"]]
    return calm_config(strategies=strategies, venue={"speed": 60.0}, **sections)


def state_of(session, scope: str = "portfolio") -> str:
    return session.engine.guard.states.state(scope).value


def toasts(app) -> list[str]:
    return [n.message for n in app._notifications]


def select(table: DataTable, key: str) -> None:
    table.focus()
    table.move_cursor(row=table.get_row_index(key))


async def answer(pilot, key: str) -> str:
    """Wait for the confirm modal, answer it with key; its question."""
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
    question = pilot.app.screen.question
    await pilot.press(key)
    await wait_until(pilot, lambda: not isinstance(pilot.app.screen, ConfirmScreen))
    return question


async def test_halt_pause_resume_act_on_the_portfolio_or_on_the_strategy_selected_in_strategies(tmp_path):
    async with console_over_session(calm_config(), tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        strategies = app.query_one("#strategies", DataTable)
        await wait_until(pilot, lambda: strategies.row_count == 3)
        await pilot.press("p")
        assert state_of(session) == "PAUSED"
        assert any(t.startswith("portfolio: ") for t in toasts(app))
        await pilot.press("r")
        assert state_of(session) == "ACTIVE"
        select(strategies, "rsi_eth")
        await pilot.press("h")
        assert state_of(session, "rsi_eth") == "HALTED" and state_of(session) == "ACTIVE"
        assert any(t.startswith("strategy rsi_eth: ") for t in toasts(app))
        await wait_until(pilot, lambda: str(strategies.get_row("rsi_eth")[1]) == "HALTED")
        await pilot.press("r")
        assert state_of(session, "rsi_eth") == "ACTIVE"
        await pilot.press("p")
        assert state_of(session, "rsi_eth") == "PAUSED" and state_of(session) == "ACTIVE"
    rows = query(tmp_path / "desk.sqlite", "SELECT command, args FROM commands ORDER BY id")
    assert [r[0] for r in rows] == ["pause", "resume", "halt", "resume", "pause"]
    assert all("rsi_eth" in r[1] for r in rows[2:]) and not any("rsi_eth" in r[1] for r in rows[:2])


async def test_c_cancels_the_selected_order_and_shift_c_every_order_of_its_strategy(tmp_path):
    db = tmp_path / "desk.sqlite"
    async with console_over_session(bracket_config(), db) as (session, app, pilot, trading):
        orders = app.query_one("#orders", DataTable)
        await wait_until(pilot, lambda: orders.row_count >= 2, timeout=40)
        select(orders, orders.coordinate_to_cell_key((0, 0)).row_key.value)
        await pilot.press("c")  # the selected order: the table may have moved under the cursor since, as orders fill
        said = [t for t in toasts(app) if t.startswith("order ")]
        assert len(said) == 1 and "cancel of " in said[0]
        first = said[0].split(" ")[1].rstrip(":")
        assert first not in {o.client_id for o in session.engine.open_orders()}
        await wait_until(pilot, lambda: orders.row_count >= 1 and first not in orders.rows, timeout=40)
        key = orders.coordinate_to_cell_key((0, 0)).row_key.value
        strategy = app.query_one("#orders").open[key].strategy
        select(orders, key)
        mine = {o.client_id for o in session.engine.open_orders() if o.strategy == strategy}
        await pilot.press("C")
        assert not mine & {o.client_id for o in session.engine.open_orders()}
        assert any(t.startswith(f"strategy {strategy}: ") for t in toasts(app))
    rows = query(db, "SELECT command, args FROM commands ORDER BY id")
    assert [r[0] for r in rows] == ["cancel", "cancel"]
    assert first in rows[0][1] and strategy in rows[1][1]


async def test_x_flattens_the_selected_position_after_asking(tmp_path):
    db = tmp_path / "desk.sqlite"
    async with console_over_session(calm_config(), db) as (session, app, pilot, trading):
        positions = app.query_one("#positions", DataTable)
        await wait_until(pilot, lambda: positions.row_count >= 1)
        symbol = positions.coordinate_to_cell_key((0, 0)).row_key.value
        select(positions, symbol)
        await pilot.press("x")
        question = await answer(pilot, "n")
        holders = [c.name for c in session.config.strategies if symbol in c.symbols]
        assert f"Flatten {symbol}" in question and "may trade it again: pause" in question, question
        assert all(name in question for name in holders), (holders, question)
        assert not query(db, "SELECT 1 FROM commands")  # no: nothing sent
        await pilot.press("p")  # the portfolio paused: nothing trades the symbol again, and the question says so
        await wait_until(pilot, lambda: state_of(session) == "PAUSED")
        await pilot.press("x")
        # the question names the position the cursor is on now: the one selected may have closed meanwhile (the
        # session trades on), taking its row away and the cursor to another
        question = await answer(pilot, "y")
        assert "may trade it again" not in question, question
        flattened = re.match(r"Flatten (\S+):", question).group(1)
        await wait_until(pilot, lambda: any(t.startswith(f"{flattened}: ") for t in toasts(app)))
    assert query(db, "SELECT command, args FROM commands") == [("pause", "{}"),
                                                               ("flatten", f'{{"symbol": "{flattened}"}}')]


async def test_the_emergency_stop_modal_no_keeps_trading_and_yes_stops(tmp_path):
    async with console_over_session(calm_config(), tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        await pilot.press("exclamation_mark")
        assert "EMERGENCY STOP" in await answer(pilot, "escape")
        assert state_of(session) == "ACTIVE"
        await pilot.press("exclamation_mark")
        await answer(pilot, "y")
        assert state_of(session) == "EMERGENCY_STOPPED"


async def test_keys_are_remapped_from_the_config_and_the_help_shows_the_new_ones():
    config = calm_config(console={"keys": {"emergency-stop": "ctrl+e", "halt": "H"}})
    async with console_over_session(config) as (session, app, pilot, trading):
        await pilot.press("exclamation_mark")           # no longer the emergency stop
        await pilot.press("h")                          # nor halt
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmScreen) and state_of(session) == "ACTIVE"
        await pilot.press("H")
        assert state_of(session) == "HALTED"
        await pilot.press("ctrl+e")
        await answer(pilot, "y")
        assert state_of(session) == "EMERGENCY_STOPPED"
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        listing = str(app.screen.query_one("#help-keys").render())
        assert "^e" in listing and "Emergency stop" in listing


def test_an_unknown_key_id_is_refused_naming_the_valid_ones(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"no action 'estop'; the actions are .*emergency-stop"):
        check_keys({"estop": "ctrl+e"})
    config = tmp_path / "config.toml"
    config.write_text('[console.keys]\nestop = "ctrl+e"\n\n[[instruments]]\nsymbol = "BTC/USDT"\n'
                      'tick_size = 0.01\nlot_size = 0.0001\nmin_qty = 0.0001\nmin_notional = 10.0\n')
    assert main(["run", "--config", str(config), "--db", str(tmp_path / "d.sqlite"), "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "[console.keys]: no action 'estop'" in err and "emergency-stop" in err and "halt" in err
    assert not (tmp_path / "d.sqlite").exists()  # refused before the session opened anything
    assert main(["run", "--config", str(config), "--theme", "sepia", "--duration", "1"]) == 2


def test_the_console_section_is_not_part_of_the_stored_config():
    assert config_text(make_config(console={"theme": "light", "bell": True})) == config_text(make_config())


async def test_a_command_from_another_shell_a_state_change_and_a_failed_strategy_raise_toasts_and_the_bell():
    strategies = [*BASE_CONFIG["strategies"],
                  {"name": "buggy", "kind": "fails_on_third_bar_test", "symbols": ["BTC/USDT"], "timeframe": "1m"}]
    async with console_over_session(calm_config(strategies=strategies, console={"bell": True})) as (
            session, app, pilot, trading):
        rings = []
        app.bell = lambda: rings.append(1)
        await wait_until(pilot, lambda: app._snapshot is not None)
        session.operator_command("pause", {}, "from a test", "cli tester")  # what `paperdesk pause` ends in
        await wait_until(pilot, lambda: any(t.startswith("pause from cli tester: ") for t in toasts(app)))
        assert any("portfolio: ACTIVE -> PAUSED (operator: from a test)" in t for t in toasts(app))
        await wait_until(pilot, lambda: any(t.startswith("strategy buggy FAILED and stopped") for t in toasts(app)))
        assert rings
        await pilot.press("r")  # the console's own command: its answer, not an alert from another shell
        await pilot.pause(app.REFRESH_SECONDS * 5)
        assert not any("from console " in t for t in toasts(app))


class AskingDesk(LocalDesk):
    """A desk that wants the operator to confirm before a command goes (attach mode with no session running)."""

    def confirm_first(self, command: str) -> str | None:
        return f"No session is running: queue {command} for when one starts?"


async def test_a_desk_that_asks_first_gets_the_question_before_any_command_goes():
    config = calm_config()
    session = PaperSession(config)
    await session.open()
    app = PaperdeskApp(AskingDesk(session), config)
    try:
        async with app.run_test(size=(140, 45)) as pilot:
            await pilot.press("h")
            assert "queue halt" in await answer(pilot, "n")
            assert state_of(session) == "ACTIVE"
            await pilot.press("h")
            await answer(pilot, "y")
            assert state_of(session) == "HALTED"
    finally:
        await session.close()


async def test_slash_filters_the_event_log_and_scrolling_up_pauses_following(tmp_path):
    async with console_over_session(calm_config(), tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        events = app.query_one("#events", DataTable)
        await wait_until(pilot, lambda: events.row_count > events.size.height + 5)
        events.focus()
        events.scroll_home(animate=False)
        await wait_until(pilot, lambda: "paused" in str(events.border_title))
        rows_then = events.row_count
        await wait_until(pilot, lambda: events.row_count > rows_then)
        assert events.scroll_y == 0  # new lines did not pull the reader away
        events.scroll_end(animate=False)
        await wait_until(pilot, lambda: "paused" not in str(events.border_title))
        rows_then = events.row_count
        await wait_until(pilot, lambda: events.row_count > rows_then + 2)
        await pilot.pause(app.REFRESH_SECONDS * 5)
        assert events.scroll_y == events.max_scroll_y  # following again
        await pilot.press("slash")
        box = app.query_one("#events-filter", Input)
        assert box.display and box.has_focus
        await pilot.press("f", "i", "l", "l")         # the letters go to the filter: f, i, l are not halt or pause
        assert state_of(session) == "ACTIVE"
        await wait_until(pilot, lambda: events.row_count > 0)
        assert all("fill" in text for text in event_texts(app))
        await pilot.press("enter")
        assert not box.display and events.has_focus and "matching 'fill'" in str(events.border_title)
        await pilot.press("slash", "escape")
        await wait_until(pilot, lambda: any(not t.startswith("fill ") for t in event_texts(app)))


async def test_the_event_log_says_how_many_lines_a_refresh_could_not_show():
    async with console_over_session(calm_config()) as (session, app, pilot, trading):
        log = app.query_one("#events")
        await wait_until(pilot, lambda: log.last_seq > 0)
        snap = session.snapshot()
        later = EventView(log.last_seq + 500, snap.ts, "engine", "INFO", "a line far ahead")
        log.show(replace(snap, event_log=(later,)))
        assert event_texts(app)[-2:] == [
            "WARN … 499 line(s) not shown: more came in one refresh than a snapshot carries", "a line far ahead"]


async def test_b_j_and_enter_open_the_behaviour_journal_and_detail_screens(tmp_path):
    from console.screens.behaviour import BehaviourScreen
    from console.screens.detail import BreakerDetailScreen, OrderDetailScreen, StrategyDetailScreen
    from console.screens.journal import JournalScreen

    async with console_over_session(bracket_config(), tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        async def opens(screen_type, key="enter"):
            await pilot.press(key)
            await wait_until(pilot, lambda: isinstance(app.screen, screen_type))
            shown = app.screen
            await pilot.press("escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, screen_type))
            return shown

        await opens(BehaviourScreen, "b")
        await opens(JournalScreen, "j")  # no strategy selected: the journal picks one itself
        strategies = app.query_one("#strategies", DataTable)
        await wait_until(pilot, lambda: strategies.row_count == 3)
        select(strategies, "bb_sol")
        assert (await opens(JournalScreen, "j")).strategy == "bb_sol"
        assert (await opens(StrategyDetailScreen)).name_shown == "bb_sol"
        breakers = app.query_one("#breakers", DataTable)
        select(breakers, "market_data:portfolio")
        shown = await opens(BreakerDetailScreen)
        assert (shown.breaker, shown.scope) == ("market_data", "portfolio")
        orders = app.query_one("#orders", DataTable)
        await wait_until(pilot, lambda: orders.row_count >= 1, timeout=40)
        key = orders.coordinate_to_cell_key((0, 0)).row_key.value
        select(orders, key)
        shown = await opens(OrderDetailScreen)  # the selected row's order (rows come and go as orders fill)
        assert shown.client_id in session.engine.orders
        events = app.query_one("#events", DataTable)
        line = next(i for i in range(events.row_count) if str(events.get_row_at(i)[1]) == "order")
        events.focus()
        events.move_cursor(row=line)
        assert (await opens(OrderDetailScreen)).client_id == events.selected_order()


async def test_t_cycles_the_themes_and_the_choice_is_the_next_starts(tmp_path, monkeypatch):
    async with console_over_session(calm_config()) as (session, app, pilot, trading):
        assert app.theme == "paperdesk-dark"
        await pilot.pause(0.5)
        assert not saved_theme_file().exists()  # starting in a theme is not choosing one
        await pilot.press("t")
        assert app.theme == "paperdesk-light"
        await pilot.press("t")
        assert app.theme == "paperdesk-high-contrast" and app.has_class("-high-contrast")
    assert 'theme = "paperdesk-high-contrast"' in saved_theme_file().read_text()
    async with console_over_session(calm_config()) as (session, app, pilot, trading):
        assert app.theme == "paperdesk-high-contrast"  # remembered
    async with console_over_session(calm_config(console={"theme": "light"})) as (session, app, pilot, trading):
        assert app.theme == "paperdesk-light"          # the config's beats the remembered one
    monkeypatch.setenv("PAPERDESK_THEME", "dark")
    assert start_theme(None, "light") == ("paperdesk-dark", "PAPERDESK_THEME")
    assert start_theme("high-contrast", "light") == ("paperdesk-high-contrast", "--theme")
    async with console_over_session(calm_config(console={"theme": "light"}), theme="textual-light") as (
            session, app, pilot, trading):
        assert app.theme == "textual-light"            # --theme beats them all


async def test_palette_entries_run_the_keys_actions():
    async with console_over_session(calm_config()) as (session, app, pilot, trading):
        await run_palette_command(pilot, "next theme", name_of(app, "theme"))
        assert app.theme == "paperdesk-light"
        app.query_one("#orders").focus()
        await run_palette_command(pilot, "maximise", name_of(app, "maximize"))
        assert app.screen.maximized is app.query_one("#orders")
        await run_palette_command(pilot, "maximise", name_of(app, "maximize"))
        assert app.screen.maximized is None
        await run_palette_command(pilot, "filter", name_of(app, "filter-events"))
        assert app.query_one("#events-filter", Input).has_focus
        await pilot.press("escape")
        await run_palette_command(pilot, "pause", name_of(app, "pause"))
        assert state_of(session) == "PAUSED"
        await run_palette_command(pilot, "resume", name_of(app, "resume"))
        assert state_of(session) == "ACTIVE"
