"""Help screen, command palette and themes of the real console app, driven by Pilot over a real paper session."""

from textual.command import CommandInput, CommandList, CommandPalette
from textual.widgets import Static

from console.app import EMERGENCY_LABEL
from console.screens.confirm import ConfirmScreen
from console.screens.help import GROUPS, HelpScreen, describe
from console.theme_store import DEFAULT_THEME, HIGH_CONTRAST, THEME_VARIABLE
from tests.conftest import make_config
from tests.console.test_app import console_over_session, own_config_home, wait_until

__all__ = ["own_config_home"]  # its autouse fixture applies here too: no test reads or writes the user's own theme


def portfolio_state(session) -> str:
    return session.engine.guard.states.state("portfolio").value


def action_names(app) -> list[str]:
    """Every action of the app's own, as the palette and the help screen name it."""
    return list(dict.fromkeys(describe(b) for b in app.key_bindings() if b.id in app.ACTION_IDS))


def name_of(app, binding_id: str) -> str:
    return next(describe(b) for b in app.key_bindings() if b.id == binding_id)


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
    commands.highlighted = 0  # the best match (a fuzzy query matches others below it)
    await pilot.press("enter")
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
            assert listing.index(name_of(app, "halt")) < listing.index(name_of(app, "pause")) \
                < listing.index(name_of(app, "resume")) < listing.index(name_of(app, "emergency-stop")) \
                < listing.index(GROUPS[1])
            reference = str(app.screen.query_one("#help-reference", Static).render())
            for words in ("COOLDOWN", EMERGENCY_LABEL, "Open orders", "Breakers", "Market", "Equity"):
                assert words in reference
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.press("question_mark")              # ? toggles it shut too
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_the_palette_offers_every_action_and_halt_halts_the_portfolio(tmp_path):
    db = tmp_path / "desk.sqlite"
    async with console_over_session(make_config(), db) as (session, app, pilot, trading):
        commands = await open_palette(pilot, "")
        names = action_names(app)
        assert len(names) == len(app.ACTION_IDS) == 16
        await wait_until(pilot, lambda: set(names) <= set(prompts(commands)))
        await pilot.press("escape")
        await pilot.pause()
        await run_palette_command(pilot, "halt", name_of(app, "halt"))
        assert portfolio_state(session) == "HALTED"
        await pilot.pause(app.REFRESH_SECONDS * 5)
        assert "HALTED (operator: halt key in the console)" in app.query_one("#header").line
        await run_palette_command(pilot, "help", name_of(app, "help"))
        assert isinstance(app.screen, HelpScreen)
    from tests.store.helpers import query

    assert [r[0] for r in query(db, "SELECT command FROM commands ORDER BY id")] == ["halt"]


async def test_the_palettes_emergency_stop_asks_in_the_same_modal_as_the_key(tmp_path):
    async with console_over_session(make_config(), tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        app.CONFIRM_SECONDS = 60.0  # closing the palette can take over 3 s on a busy machine; the window is not tested
        await run_palette_command(pilot, "emergency", name_of(app, "emergency-stop"))
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert portfolio_state(session) == "ACTIVE"       # it only asked
        await pilot.press("exclamation_mark")             # and the key's second press is the confirmation
        assert portfolio_state(session) == "EMERGENCY_STOPPED"


async def test_the_theme_comes_from_the_environment_and_defaults_to_paperdesk_dark(monkeypatch):
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        assert app.theme == DEFAULT_THEME == "paperdesk-dark"
        assert HIGH_CONTRAST.name in app.available_themes  # so the palette's theme picker offers it
    monkeypatch.setenv(THEME_VARIABLE, "paperdesk-high-contrast")
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        assert app.theme == "paperdesk-high-contrast"
        assert app.current_theme is HIGH_CONTRAST
    monkeypatch.setenv(THEME_VARIABLE, "no-such-theme")
    async with console_over_session(make_config()) as (session, app, pilot, trading):
        assert app.theme == DEFAULT_THEME
        assert any("PAPERDESK_THEME: no theme 'no-such-theme'" in n.message for n in app._notifications)


async def test_under_no_color_the_header_says_emergency_stopped_in_words_reversed_and_bold(monkeypatch, tmp_path):
    monkeypatch.setenv("NO_COLOR", "1")
    async with console_over_session(make_config(), tmp_path / "desk.sqlite") as (session, app, pilot, trading):
        assert app.no_color
        await pilot.press("exclamation_mark", "exclamation_mark")
        assert portfolio_state(session) == "EMERGENCY_STOPPED"
        await pilot.pause(app.REFRESH_SECONDS * 5)
        head = app.query_one("#header")
        assert EMERGENCY_LABEL in head.line and "EMERGENCY STOPPED" in EMERGENCY_LABEL
        start = head.line.index(EMERGENCY_LABEL)
        styles = [str(span.style) for span in head.text.spans if span.start <= start < span.end]
        assert any("bold" in s and "reverse" in s for s in styles)
