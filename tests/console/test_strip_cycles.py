"""Painted lines are freed by reference counting: none is left for the cycle collector (console/strip_cycles.py).

Each line Textual painted referred to itself through Strip.divide's cache: at ten frames a second, ~50,000 objects
for every full collection to walk and free, a 60-110 ms pause of the console and the session alike."""

import gc
from contextlib import contextmanager

from rich.segment import Segment
from textual.strip import Strip

from console import strip_cycles
from tests.conftest import make_config
from tests.console.test_app import console_over_session, wait_until


@contextmanager
def unreachable_kept(found: list[object]):
    """What becomes unreachable inside the block and only the cycle collector would free, put in found."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def test_a_line_divided_whole_is_itself_and_refers_to_nothing_that_refers_back():
    strip_cycles.install()
    found: list[object] = []
    with unreachable_kept(found):
        line = Strip([Segment("bid "), Segment("101.25")], 10)
        assert line.divide([10]) == [line] and line.divide([12, 10]) == [line]
        left, right = line.divide([4, 10])  # a cut still divides, as Textual does
        assert (left.text, right.text) == ("bid ", "101.25")
        del line, left, right
    assert [o for o in found if isinstance(o, Strip)] == []


async def test_frames_painted_while_a_session_trades_leave_no_line_for_the_cycle_collector(monkeypatch):
    monkeypatch.setattr(Strip, "divide", strip_cycles._DIVIDE)  # Textual's: the app installs the fix itself
    divided = 0

    async with console_over_session(make_config()) as (session, app, pilot, trading):
        await wait_until(pilot, lambda: len(session.engine.fills) >= 1)  # orders, fills and quotes moving
        divide = Strip.divide

        def counted(self: Strip, cuts):
            nonlocal divided
            divided += 1
            return divide(self, cuts)

        monkeypatch.setattr(Strip, "divide", counted)
        found: list[object] = []
        with unreachable_kept(found):
            await pilot.pause(app.REFRESH_SECONDS * 10)  # ten refreshes, each painted
    assert divided > 100  # lines were painted in the meantime
    assert [o for o in found if isinstance(o, Strip)] == []
