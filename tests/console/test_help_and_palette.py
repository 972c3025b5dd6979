"""Help screen, command palette and themes of the real console app, driven by Pilot over a real paper session."""

from textual.command import CommandInput, CommandList, CommandPalette
from textual.widgets import Static

from console.app import DEFAULT_THEME, EMERGENCY_LABEL, HIGH_CONTRAST, THEME_VARIABLE
from console.screens.help import GROUPS, HelpScreen, describe
from tests.conftest import make_config
from tests.console.test_app import console_over_session, wait_until

TRADING_ACTIONS = ("Halt", "Pause", "Resume", "Emergency stop (press twice)", "Help (keys)")


def portfolio_state(session) -> str:
    return session.engine.guard.states.state("portfolio").value


async def open_palette(pilot, query: str) -> CommandList:
    await pilot.press("ctrl+p")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CommandPalette))
    palette = pilot.app.screen
    palette.query_one(CommandInput).value = query
    commands = palette.query_one(CommandList)
    await wait_until(pilot, lambda: commands.option_count > 0)
    return commands


def prompts(commands: CommandList) -> list[str]:
    return [str(commands.get_option_at_index(i).prompt).split("\n")[0] for i in range(commands.option_count)]


async def run_palette_command(pilot, query: str, name: str) -> None:
    commands = await open_palette(pilot, query)
    await wait_until(pilot, lambda: name in prompts(commands)[:1])
    await pilot.press("down", "enter")
    await wait_until(pilot, lambda: not isinstance(pilot.app.screen, CommandPalette))
    await pilot.pause()


async def test_question_mark_and_f1_open_a_help_listing_every_binding_and_escape_closes_it():
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        for key in ("question_mark", "f1"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            listing = str(app.screen.query_one("#help-keys", Static).render())
            for binding in app.key_bindings():
                assert describe(binding) in listing and app.get_key_display(binding) in listing
            # grouped, trading safety first and quit last, each in its key order
            positions = [listing.index(group) for group in GROUPS]
            assert positions == sorted(positions)
            assert listing.index("Halt") < listing.index("Pause") < listing.index("Resume") \
                < listing.index("Emergency stop") < listing.index(GROUPS[1])
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.press("question_mark")              # ? toggles it shut too
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_the_palette_offers_the_trading_actions_and_halt_halts_the_portfolio(tmp_path):
    db = tmp_path / "desk.sqlite"
    async with console_over_session(make_config(), db) as (session, app, pilot, trading):
        commands = await open_palette(pilot, "")
        await wait_until(pilot, lambda: set(TRADING_ACTIONS) <= set(prompts(commands)))
        await pilot.press("escape")
        await pilot.pause()
        await run_palette_command(pilot, "halt", "Halt")
        assert portfolio_state(session) == "HALTED"
        await pilot.pause(app.REFRESH_SECONDS + 0.2)
        assert "TRADING HALTED (operator: halt key in the console)" in str(app.query_one("#status", Static).render())
        await run_palette_command(pilot, "help", "Help (keys)")
        assert isinstance(app.screen, HelpScreen)
    from tests.store.helpers import query

    assert [r[0] for r in query(db, "SELECT command FROM commands ORDER BY id")] == ["halt"]


async def test_the_palettes_emergency_stop_asks_for_the_same_confirmation_as_the_key(tmp_path):
    async with console_over_session(make_config(), tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        app.CONFIRM_SECONDS = 60.0  # closing the palette can take over 3 s on a busy machine; the window is not tested
        await run_palette_command(pilot, "emergency", "Emergency stop (press twice)")
        assert portfolio_state(session) == "ACTIVE"       # it only asked
        await pilot.press("exclamation_mark")             # and the key's second press is the confirmation
        assert portfolio_state(session) == "EMERGENCY_STOPPED"


async def test_the_theme_comes_from_the_environment_and_defaults_to_textual_dark(monkeypatch):
    monkeypatch.delenv(THEME_VARIABLE, raising=False)
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        assert app.theme == DEFAULT_THEME == "textual-dark"
        assert HIGH_CONTRAST.name in app.available_themes  # so the palette's theme picker offers it
    monkeypatch.setenv(THEME_VARIABLE, "paperdesk-high-contrast")
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        assert app.theme == "paperdesk-high-contrast"
        assert app.current_theme is HIGH_CONTRAST
    monkeypatch.setenv(THEME_VARIABLE, "no-such-theme")
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        assert app.theme == DEFAULT_THEME


async def test_under_no_color_the_header_says_emergency_stopped_in_words(monkeypatch, tmp_path):
    monkeypatch.setenv("NO_COLOR", "1")
    async with console_over_session(make_config(), tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        assert app.no_color
        await pilot.press("exclamation_mark", "exclamation_mark")
        assert portfolio_state(session) == "EMERGENCY_STOPPED"
        await pilot.pause(app.REFRESH_SECONDS + 0.2)
        status = str(app.query_one("#status", Static).render())
        assert f"TRADING {EMERGENCY_LABEL}" in status and "EMERGENCY STOPPED" in EMERGENCY_LABEL
