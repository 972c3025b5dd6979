"""DeskTable.show_rows, what every panel refreshes through: only what changed is touched, the cursor stays on its row.

bench/console_load.py found each refresh rewriting every cell of every row (19,000 update_cell calls in 25 s) and
removing gone orders one by one (DataTable.remove_row renumbers every row after it): a refresh took 34 ms at the
median under 500 order events a second.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from rich.text import Text
from textual.app import App, ComposeResult
from textual.pilot import Pilot

from console.widgets.cells import DeskTable


class Panel(DeskTable):
    def __init__(self) -> None:
        super().__init__("panel", ("id", "state", "qty"), id="panel")
        self.updates: list[tuple[str, str]] = []

    def _set_cell(self, key, column, value):  # type: ignore[no-untyped-def]
        self.updates.append((key, str(column.key.value)))
        return super()._set_cell(key, column, value)


class OnePanel(App[None]):
    def compose(self) -> ComposeResult:
        yield Panel()


def rows(n: int, state: str = "ACTIVE", style: str = "green") -> dict[str, tuple[object, ...]]:
    return {f"O{i}": (f"O{i}", Text(state, style=style), Text(f"{i:.2f}", justify="right")) for i in range(n)}


@asynccontextmanager
async def showing(n: int, size: tuple[int, int] = (80, 24)) -> AsyncIterator[tuple[OnePanel, Panel, Pilot]]:
    """The panel in a running app, showing rows(n)."""
    app = OnePanel()
    async with app.run_test(size=size) as pilot:
        panel = app.query_one(Panel)
        panel.show_rows(rows(n))
        await pilot.pause()
        yield app, panel, pilot


def keys(panel: Panel) -> list[str]:
    return [str(key.value) for key in panel.rows]


async def test_only_the_cells_that_changed_are_updated() -> None:
    async with showing(10) as (app, panel, pilot):
        panel.show_rows(rows(10))
        assert panel.updates == []
        changed = rows(10)
        changed["O3"] = ("O3", Text("HALTED", style="green"), changed["O3"][2])
        panel.show_rows(changed)
        assert panel.updates == [("O3", "state")]
        assert panel.get_row("O3")[1].plain == "HALTED"


async def test_a_colour_alone_is_a_change() -> None:
    """A theme change recolours the cells whose words stay the same (Text equality ignores its style)."""
    async with showing(3) as (app, panel, pilot):
        panel.show_rows(rows(3, style="red"))
        assert sorted(panel.updates) == [("O0", "state"), ("O1", "state"), ("O2", "state")]
        assert panel.get_row("O1")[1].style == "red"


async def test_a_wider_value_widens_its_column() -> None:
    async with showing(3) as (app, panel, pilot):
        panel.show_rows(rows(3, state="EMERGENCY_STOPPED"))
        await pilot.pause()
        assert panel.ordered_columns[1].content_width == len("EMERGENCY_STOPPED")


async def test_rows_come_and_go_and_the_cursor_stays_on_its_row() -> None:
    async with showing(10) as (app, panel, pilot):
        panel.move_cursor(row=7)
        assert panel.selected_key() == "O7"
        few_gone = {k: v for k, v in rows(12).items() if k not in ("O1", "O2")}
        panel.show_rows(few_gone)  # two gone (removed one by one), two new appended
        assert keys(panel) == list(few_gone)
        assert panel.selected_key() == "O7"
        many_gone = {k: v for k, v in rows(12).items() if k in ("O0", "O7", "O9", "O11")}
        panel.show_rows(many_gone)  # refilled
        assert keys(panel) == ["O0", "O7", "O9", "O11"]
        assert panel.selected_key() == "O7"
        panel.show_rows({"O11": rows(12)["O11"], "O0": rows(12)["O0"]})  # the selected row gone, the order changed
        assert keys(panel) == ["O11", "O0"]
        assert panel.cursor_row == 1  # where it was, as far as the table now reaches
        panel.show_rows({})
        assert panel.row_count == 0 and panel.selected_key() is None


def drawn(panel: Panel, y: int) -> str:
    return "".join(segment.text for segment in panel.render_line(y))


async def test_a_line_is_drawn_again_when_its_row_changes_and_only_then() -> None:
    """Each row's line is kept (table_lines.py) until the row changes, the cursor moves onto or off it, or the
    styles change; what is on screen is always what the row holds."""
    async with showing(4) as (app, panel, pilot):
        assert "ACTIVE" in drawn(panel, 3) and "2.00" in drawn(panel, 3)  # the header is line 0
        changed = rows(4)
        changed["O2"] = ("O2", Text("HALTED", style="green"), Text("7.50", justify="right"))
        panel.show_rows(changed)
        await pilot.pause()
        assert "HALTED" in drawn(panel, 3) and "7.50" in drawn(panel, 3)
        assert "ACTIVE" in drawn(panel, 2)
        cursor_style = panel.get_component_rich_style("datatable--cursor")
        panel.move_cursor(row=2)
        await pilot.pause()
        assert any(segment.style is not None and segment.style.bgcolor == cursor_style.bgcolor
                   for segment in panel.render_line(3) if segment.text.strip())
        panel.show_rows(rows(2))  # two rows gone: the lines below the table are blank
        await pilot.pause()
        assert drawn(panel, 3).strip() == ""
        assert "O1" in drawn(panel, 2)


async def test_the_first_rows_go_in_one_pass_and_the_cursor_stays_on_its_row() -> None:
    """drop_first is how the event log drops its oldest lines (remove_row, one by one, renumbered every later row
    each time: 100 ms for 200 of 1,200 lines)."""
    async with showing(10) as (app, panel, pilot):
        panel.move_cursor(row=6)
        await pilot.pause()
        assert panel.drop_first(4) == ["O0", "O1", "O2", "O3"]
        assert keys(panel) == [f"O{i}" for i in range(4, 10)] and panel.selected_key() == "O6"
        assert panel.get_row_at(0)[0] == "O4" and panel.get_row("O9")[2].plain == "9.00"
        after = {key: cells for key, cells in rows(11).items() if int(key[1:]) >= 4}
        panel.show_rows(after)  # the same rows and a new one: only the new one is added, after them
        await pilot.pause()
        assert panel.updates == [] and keys(panel) == list(after)
        assert panel.get_row_at(6)[0] == "O10" and panel.virtual_size.height == 7 + 1  # seven rows, the header
        assert "O4" in drawn(panel, 1) and "O10" in drawn(panel, 7)
        panel.move_cursor(row=1)
        panel.drop_first(3)  # the cursor's row went too: it goes to the first
        await pilot.pause()
        assert panel.selected_key() == "O7" and panel.drop_first(0) == []


async def test_rows_coming_do_not_lay_the_screen_out_again() -> None:
    """A panel's size is its share of the screen: rows it scrolls over change no one else's place, so adding them
    must not lay out (and repaint) every panel, as DataTable's virtual_size did after each refresh that added one."""
    # more rows than the panel shows: its scrollbar is there from now on
    async with showing(30, size=(80, 12)) as (app, panel, pilot):
        await pilot.pause()
        layouts = 0
        lay_out = app.screen._refresh_layout

        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal layouts
            layouts += 1
            return lay_out(*args, **kwargs)

        app.screen._refresh_layout = counted  # type: ignore[method-assign]
        for n in (40, 50, 60):
            panel.show_rows(rows(n))
            await pilot.pause()
            await pilot.pause()
        assert panel.virtual_size.height == 61  # the header and 60 rows
        assert layouts == 0


async def test_the_row_under_the_mouse_is_highlighted_as_datatable_does() -> None:
    async with showing(5, size=(80, 12)) as (app, panel, pilot):
        hover = panel.get_component_rich_style("datatable--hover").bgcolor

        def highlighted(y: int) -> bool:
            return any(segment.style is not None and segment.style.bgcolor == hover
                       for segment in panel.render_line(y) if segment.text.strip())

        assert not highlighted(3)
        await pilot.hover(Panel, offset=(5, 3))  # the header, then rows O0, O1: O2 is line 3
        await pilot.pause()
        assert panel.hover_coordinate.row == 2
        assert highlighted(3) and not highlighted(2) and not highlighted(4)
