"""The screens' tables (detail, behaviour, journal) are filled through console.screens.detail.fill: columns sized to
what the table holds before anything is drawn, and text shown as given.

A table filled row by row and drawn before the app went idle kept a header at the old column widths above rows at
the new ones (a clean-clone CI run's order-detail screenshot, and runs under load); a reason such as
'engine exit [bracket take-profit]: ...' lost its bracketed origin, read as markup.
"""

from textual.app import App, ComposeResult
from textual.widgets import DataTable

from console.screens.detail import fill, table

ROWS = [("2026-01-01 00:57:00", "SUBMITTED", "engine exit [bracket take-profit]: O0000124 filled 0.05 at 46752.7"),
        ("2026-01-01 00:57:03", "FILLED", "")]


class OneTable(App[None]):
    def compose(self) -> ComposeResult:
        yield table("states", "states", "time", "status", "reason")


def line(grid: DataTable, y: int) -> str:
    return "".join(segment.text for segment in grid.render_line(y))


async def test_a_header_drawn_straight_after_filling_lines_up_with_the_rows() -> None:
    app = OneTable()
    async with app.run_test(size=(120, 10)) as pilot:
        grid = app.query_one(DataTable)
        await pilot.pause()
        fill(grid, ROWS)
        header_before_idle = line(grid, 0)  # what a frame drawn now shows, before the table's idle sizing
        await pilot.pause()
        assert line(grid, 0) == header_before_idle
        first = line(grid, 1)
        assert header_before_idle.index("status") == first.index("SUBMITTED")
        assert header_before_idle.index("reason") == first.index("engine exit")


async def test_cells_are_shown_as_given_not_read_as_markup() -> None:
    app = OneTable()
    async with app.run_test(size=(120, 10)) as pilot:
        grid = app.query_one(DataTable)
        fill(grid, ROWS)
        await pilot.pause()
        assert "engine exit [bracket take-profit]: O0000124 filled 0.05 at 46752.7" in line(grid, 1)


async def test_filling_again_replaces_the_rows_and_sizes_to_the_new_ones() -> None:
    app = OneTable()
    async with app.run_test(size=(120, 10)) as pilot:
        grid = app.query_one(DataTable)
        fill(grid, ROWS, keys=["a", "b"])
        fill(grid, [("t", "s", "r")])
        await pilot.pause()
        assert grid.row_count == 1
        assert [c.get_render_width(grid) - 2 * grid.cell_padding for c in grid.ordered_columns] == [4, 6, 6]
