"""A refresh repaints only the panels whose picture changed, and lays nothing out.

bench/console_load.py found every panel repainted on every refresh, ten times a second, with a layout of the whole
screen each time: the header's text update asked for a layout (its height is one line whatever it says), and
setting a panel's border title repaints the panel even when the words are the same. The painting held the trading
loop for 30 ms a frame.
"""

from tests.console.frozen_desk import FrozenApp, frozen_config, frozen_desk

PANELS = ("positions", "orders", "events", "strategies", "breakers", "market")


async def test_a_refresh_of_the_same_picture_repaints_no_panel_and_lays_nothing_out(tmp_path):
    desk = await frozen_desk(tmp_path / "desk.sqlite")
    app = FrozenApp(desk, frozen_config())
    async with app.run_test(size=(160, 45)) as pilot:
        await pilot.pause()
        app.refresh_view()
        await pilot.pause()  # the frame that shows it: every panel painted, nothing left to do
        widgets = [app.query_one(f"#{name}") for name in ("header", *PANELS)]
        assert not any(w._repaint_required or w._layout_required for w in widgets)
        app.refresh_view()  # the same snapshot again
        assert [w.id for w in widgets if w._repaint_required] == ["header"]  # its line is rewritten as it is
        assert not any(w._layout_required for w in widgets) and not app.screen._layout_required
