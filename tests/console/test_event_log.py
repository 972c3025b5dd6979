"""The event log keeps the newest lines while it follows, and leaves the operator's lines alone while scrolled up."""

from textual.app import App, ComposeResult

from console.widgets.events import PRUNE_BATCH, SHOWN, EventLog
from engine.snapshot import EngineSnapshot, EventView


def picture(first: int, last: int) -> EngineSnapshot:
    lines = tuple(EventView(seq, seq * 1_000_000_000, "order", "INFO", f"order O{seq} ACCEPTED")
                  for seq in range(first, last + 1))
    return EngineSnapshot(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, (), (), (), (), 0, 0, 0, 0, (), event_log=lines)


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield EventLog()


async def test_the_log_prunes_to_the_newest_lines_while_following_and_not_while_scrolled_up():
    app = LogApp()
    async with app.run_test(size=(120, 30)) as pilot:
        log = app.query_one(EventLog)
        log.show(picture(1, SHOWN + PRUNE_BATCH + 1))
        await pilot.pause()
        assert log.row_count == SHOWN
        assert [k.value for k in log.rows][-1] == str(SHOWN + PRUNE_BATCH + 1)
        assert [k.value for k in log.rows][0] == str(PRUNE_BATCH + 2)

        log.scroll_home(animate=False)
        await pilot.pause()
        assert not log.following
        top = log.scroll_offset.y
        seen = SHOWN + PRUNE_BATCH + 1
        log.show(picture(seen + 1, seen + 2 * PRUNE_BATCH))
        await pilot.pause()
        assert log.row_count == SHOWN + 2 * PRUNE_BATCH  # nothing pruned under the operator's eyes
        assert log.scroll_offset.y == top

        log.following = True  # back at the end (the scroll watcher sets it when the view reaches the end)
        log.show(picture(seen + 2 * PRUNE_BATCH + 1, seen + 2 * PRUNE_BATCH + 1))
        await pilot.pause()
        assert log.following and log.row_count == SHOWN
