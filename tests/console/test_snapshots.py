"""Screenshots of the console's screens at three terminal sizes in each theme, against the SVGs in __snapshots__/.

Every input is frozen (tests/console/frozen_desk.py): the same seeded session stepped to the same point, the same
snapshot on every refresh, the wall clock stopped, the theme given. A difference is a change to how the console
looks: review it in snapshot_report.html, then accept it with `pytest tests/console/test_snapshots.py
--snapshot-update`. snap_compare runs the app itself (App.run), so these are plain functions, not coroutines.
"""

import asyncio
from collections.abc import Awaitable, Callable

import plotext._utility
import pytest
from textual.pilot import Pilot

from console.theme_store import THEMES
from tests.console.frozen_desk import FrozenApp, FrozenDesk, frozen_config, frozen_desk

SIZES = {"80x24": (80, 24), "160x45": (160, 45), "200x60": (200, 60)}


async def settled(pilot: Pilot) -> None:
    """Whatever the screen reads off the event loop has arrived and is laid out, and the chart (drawn on its own
    timer) is drawn."""
    workers = pilot.app.workers
    while any(not worker.is_finished for worker in workers):  # one's result may start another (a journal page)
        await workers.wait_for_complete()
        await pilot.pause()
    pilot.app.refresh_chart()
    await pilot.pause()
    await pilot.pause(0.1)  # tables measure their columns when idle, after the cells they show are set
    await pilot.pause()


async def main_screen(pilot: Pilot) -> None:
    await settled(pilot)


async def behaviour(pilot: Pilot) -> None:
    await pilot.press("b")
    await settled(pilot)


async def journal(pilot: Pilot) -> None:
    await pilot.press("j")
    await settled(pilot)


async def order_detail(pilot: Pilot) -> None:
    pilot.app.query_one("#orders").focus()
    await pilot.press("enter")
    await settled(pilot)


SCREENS: dict[str, Callable[[Pilot], Awaitable[None]]] = {
    "main": main_screen, "behaviour": behaviour, "journal": journal, "order-detail": order_detail}


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> FrozenDesk:
    return asyncio.run(frozen_desk(tmp_path_factory.mktemp("frozen-desk") / "desk.sqlite"))


@pytest.fixture(autouse=True)
def same_every_run(monkeypatch):
    """A user's NO_COLOR would turn every screenshot monochrome. plotext drops duplicate ticks and points through a
    set, so where two of them meet on the chart, which one shows changes with each process's string hashing: here it
    keeps them in the order they were drawn."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(plotext._utility, "no_duplicates", lambda data: list(dict.fromkeys(data)))


@pytest.mark.parametrize("theme", [theme.name for theme in THEMES])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", SCREENS)
def test_screen_looks_as_approved(snap_compare, desk, screen, size, theme):
    app = FrozenApp(desk, frozen_config(), theme=theme)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=SCREENS[screen])
