"""What the panels share: numbers as right-aligned Text (never parsed as markup), market times, durations,
theme colours, and a table that updates rows in place by key."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from itertools import count
from typing import Any

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.coordinate import Coordinate
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable
from textual.widgets.data_table import CellKey, Column, RowKey

from console.widgets.table_lines import LineStyle, row_strip


def num(value: float | None, decimals: int = 2, signed: bool = False, style: str = "") -> Text:
    if value is None:
        return Text("—", justify="right")
    return Text(f"{value:+,.{decimals}f}" if signed else f"{value:,.{decimals}f}", style=style, justify="right")


def tone(widget: Widget, variable: str) -> str:
    """A theme colour (success, error, warning, ...) as a Rich style, so a theme change recolours the next refresh."""
    return widget.app.theme_variables.get(variable, "")


def pnl(widget: Widget, value: float, decimals: int = 2) -> Text:
    """Signed, and coloured by its sign: under NO_COLOR the sign still says it."""
    return num(value, decimals, signed=True, style=tone(widget, "success" if value > 0 else "error" if value < 0
                                                          else "foreground"))


def market_time(ns: int, date: bool = False) -> str:
    """Market time is UTC: 12:00:05, or 2024-01-02 12:00:05."""
    return time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.gmtime(ns / 1e9))


def duration(seconds: float) -> str:
    """8 s, 16 min, 2 h 05 min: a countdown's words."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 / 60:02.0f} min"


def time_left(until_ns: int, now_ns: int, speed: float) -> str:
    """Market time left, and the wall time it takes when the market runs faster: 16 min left (8 s wall)."""
    market = (until_ns - now_ns) / 1e9
    text = f"{duration(market)} left"
    return text if speed == 1 else f"{text} ({duration(market / speed)} wall)"


SPARKS = "▁▂▃▄▅▆▇█"


def same_cell(a: object, b: object) -> bool:
    """Shown alike: Text compares equal on its words and spans alone, so a colour given as its style (a theme
    change, a warning) would not count as a change."""
    if isinstance(a, Text) and isinstance(b, Text):
        return a.plain == b.plain and a.style == b.style and a.spans == b.spans and a.justify == b.justify
    return type(a) is type(b) and a == b


def cell_width(cell: object) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


def sparkline(values: Sequence[float], low: float = 0.0, high: float = 100.0) -> str:
    span = high - low or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, max(0, int((v - low) / span * len(SPARKS))))] for v in values)


def retitle(widget: Widget, title: str | None = None, subtitle: str | None = None) -> None:
    """Set a panel's border title and subtitle (None: leave it), each only when its words change: Textual repaints
    the whole panel on every set, and panels are refreshed ten times a second."""
    if title is not None and widget.border_title != title:
        widget.border_title = title
    if subtitle is not None and widget.border_subtitle != subtitle:
        widget.border_subtitle = subtitle


class DeskTable(DataTable):
    """A panel table: rows keyed by their domain id, shown by show_rows, which changes only what changed so the
    cursor and scroll stay put and a refresh costs little when little moved."""

    ALLOW_MAXIMIZE = True
    REBUILD_OVER = 2  # more rows gone than this and the table is refilled rather than removed from row by row

    def __init__(self, title: str, columns: Iterable[str], *, id: str) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, classes="panel")
        self.border_title = title
        self._columns = tuple(columns)
        self._shown: dict[str, tuple[object, ...]] = {}  # what each row shows now, by key, in table order
        # each row's drawn line and what it was drawn from (table_lines.py); a row's version moves when it changes
        self._lines: dict[Any, tuple[tuple[Any, ...], Strip]] = {}
        self._versions: dict[Any, int] = {}
        self._version = count(1)
        self._paint: tuple[Style, ...] = ()

    def on_mount(self) -> None:
        for label in self._columns:
            self.add_column(label, key=label)

    def show_rows(self, rows: Mapping[str, Sequence[object]]) -> None:
        """Exactly these rows, in this order. Rows that stay in their order have only their changed cells updated
        and new ones are appended; when rows go or the order changes, rows are removed one by one if few went,
        else the table is refilled (DataTable.remove_row renumbers every row after it: removing 20 of 50 orders
        cost more than refilling 50), the cursor kept on its row or where it was."""
        wanted = {key: tuple(cells) for key, cells in rows.items()}
        gone = [key for key in self._shown if key not in wanted]
        kept = [key for key in self._shown if key in wanted]
        order = list(wanted)
        if kept == order[:len(kept)] and len(gone) <= self.REBUILD_OVER:
            if gone:
                selected = self.selected_key()
                for key in gone:
                    self.remove_row(key)
                if selected in wanted:  # the cursor stays at its row number as rows above it go
                    self.move_cursor(row=kept.index(selected), animate=False)
            changed = False
            for key in kept:
                changed |= self._update(key, self._shown[key], wanted[key])
            if changed:
                self._update_count += 1  # DataTable's caches are keyed by it
                self.refresh()
            for key in order[len(kept):]:
                self.add_row(*wanted[key], key=key)
        else:
            self._refill(wanted)
        self._shown = wanted

    # -- drawing: DataTable's look, each row's line kept until the row changes (table_lines.py) --------------------

    def add_row(self, *cells: Any, height: int | None = 1, key: str | None = None,
                label: Any = None) -> Any:
        row_key = super().add_row(*cells, height=height, key=key, label=label)
        self._versions[row_key.value] = next(self._version)
        return row_key

    def update_cell(self, row_key: Any, column_key: Any, value: Any, *,
                    update_width: bool = False) -> None:
        super().update_cell(row_key, column_key, value, update_width=update_width)
        self._versions[getattr(row_key, "value", row_key)] = next(self._version)

    def remove_row(self, row_key: Any) -> None:
        super().remove_row(row_key)
        key = getattr(row_key, "value", row_key)
        self._versions.pop(key, None)
        self._lines.pop(key, None)

    def clear(self, columns: bool = False) -> DeskTable:
        # the cursor goes to the top without DataTable scrolling it into view after the next refresh: whoever refills
        # the table places the cursor and the scroll (a following event log is at its end within this frame)
        self.set_reactive(DataTable.cursor_coordinate, Coordinate(0, 0))
        super().clear(columns)
        self._versions.clear()
        self._lines.clear()
        return self

    def drop_first(self, n: int) -> list[str]:
        """The first n rows gone in one pass, their keys returned; the cursor stays on its row (or goes to the first).
        DataTable.remove_row renumbers every later row for each row it removes, and a clear and a refill measures
        every cell again: the event log dropping its oldest 200 of 1,200 lines took 100 ms either way."""
        order = self.ordered_rows
        n = min(n, len(order))
        if n <= 0:
            return []
        cursor = self.cursor_coordinate
        gone = [row.key for row in order[:n]]
        for key in gone:
            for column_key in self._data.pop(key):
                self._updated_cells.discard(CellKey(key, column_key))
            del self.rows[key]
            self._new_rows.discard(key)
            self._versions.pop(key.value, None)
            self._lines.pop(key.value, None)
            self._shown.pop(key.value or "", None)
        self._row_locations = TwoWayDict({row.key: index for index, row in enumerate(order[n:])})
        self._update_count += 1  # DataTable's row order and line offsets are cached by it
        self._require_update_dimensions = True
        self.set_reactive(DataTable.cursor_coordinate, Coordinate(max(0, cursor.row - n), cursor.column))
        self.refresh()  # which also has DataTable measure the table again when next idle
        return [key.value for key in gone if key.value is not None]

    def settle(self) -> None:
        """What DataTable leaves to its next idle moment, done now: the new rows measured and the scrollable size
        set, so a cursor moved or a scroll made next lands in this frame (DataTable defers it to after the next
        refresh otherwise, where it can undo an operator's scroll made in between)."""
        if self._require_update_dimensions:
            self._require_update_dimensions = False
            new_rows = self._new_rows.copy()
            self._new_rows.clear()
            self._update_dimensions(new_rows)

    def _update_dimensions(self, new_rows: Iterable[Any]) -> None:
        """DataTable's own, for rows like these (one line each, drawn by table_lines.py): each new cell measured by
        its length. DataTable's measures every new cell through Rich, a third of the console's time at 25 new event
        lines a refresh (bench/console_load.py). Textual is pinned (pyproject.toml): the snapshot tests guard this."""
        columns = self.ordered_columns
        for row_key in new_rows:
            if row_key in self.rows:
                for column, cell in zip(columns, self.get_row(row_key), strict=True):
                    column.content_width = max(column.content_width, cell_width(cell))
        header = self.header_height if self.show_header else 0
        size = Size(sum(column.get_render_width(self) for column in columns), self.row_count + header)
        if size != self.virtual_size:
            # a panel's size is its share of the screen (.panel, 1fr), never its rows': the screen is not laid out
            # again for what it scrolls over (it was, after every refresh that added a row); a scrollbar that comes
            # or goes still lays it out
            self.set_reactive(Widget.virtual_size, size)
            self._scroll_update(size)
            self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        styles = self.get_component_styles
        # the styles every line is drawn with, read once a paint: a theme or focus change redraws every line
        self._paint = (self.rich_style, styles("datatable--header").rich_style,
                       styles("datatable--even-row").rich_style, styles("datatable--odd-row").rich_style,
                       self.get_component_rich_style("datatable--cursor"),
                       self.get_component_rich_style("datatable--hover"))
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        header = self.header_height if self.show_header else 0
        base = self._paint[0] if self._paint else self.rich_style
        index = -1 if y < header else y - header + scroll_y
        if index >= self.row_count:
            return Strip.blank(width, base)
        key = None if index < 0 else self.ordered_rows[index].key.value
        columns = self.ordered_columns
        widths = tuple(column.get_render_width(self) for column in columns)
        shown = index >= 0 and self.show_cursor and self.cursor_type == "row"
        cursor = shown and index == self.cursor_row
        hover = shown and self._show_hover_cursor and index == self.hover_coordinate.row  # the mouse is over it
        drawn_from = (index, cursor, hover, widths, width, self._paint, self.zebra_stripes,
                      0 if key is None else self._versions.get(key, 0))
        kept = self._lines.get(key)
        if kept is not None and kept[0] == drawn_from:
            strip = kept[1]
        else:
            cells = [column.label for column in columns] if key is None else self.get_row_at(index)
            strip = row_strip(cells, widths, self.cell_padding, self._line_styles(index, cursor, hover, len(columns)),
                              width, self.app.console)
            self._lines[key] = (drawn_from, strip)
        return strip.crop(scroll_x, scroll_x + width).adjust_cell_length(width, base)

    def _line_styles(self, index: int, cursor: bool, hover: bool, columns: int) -> list[LineStyle]:
        """Each cell's styles as DataTable composes them: the row's (header, zebra or the table's) with the hover's
        and the cursor's under the cell's own, their colour over it; meta says which row a click lands on."""
        base, header, even, odd, cursor_style, hover_style = self._paint or (self.rich_style,) * 6
        row = header if index < 0 else (odd if index % 2 else even) if self.zebra_stripes else base
        marks = (hover_style if hover else Style()) + (cursor_style if cursor else Style())
        under = row + marks
        over = Style.from_color(color=marks.color) if cursor or hover else Style.null()
        rest = under + Style.from_meta({"row": index, "column": 0, "out_of_bounds": True})
        return [LineStyle(under + Style.from_meta({"row": index, "column": i}), over, rest) for i in range(columns)]

    def _update(self, key: str, before: tuple[object, ...], after: tuple[object, ...]) -> bool:
        """The row's changed cells written; whether there were any (show_rows repaints once for all of them)."""
        changed = False
        for column, old, new in zip(self.columns.values(), before, after, strict=True):
            if not same_cell(old, new):
                self._set_cell(key, column, new)
                changed = True
        if changed:
            self._versions[key] = next(self._version)
        return changed

    def _set_cell(self, key: str, column: Column, value: object) -> None:
        """One cell's new value, without the repaint of the whole table DataTable.update_cell makes for each cell
        (1,135 a second on the market watch under load)."""
        row_key = RowKey(key)
        self._data[row_key][column.key] = value
        if cell_width(value) > column.content_width:
            # a wider value widens its column (EMERGENCY_STOPPED after ACTIVE); a narrower one leaves it be
            self._updated_cells.add(CellKey(row_key, column.key))
            self._require_update_dimensions = True

    def _refill(self, wanted: dict[str, tuple[object, ...]]) -> None:
        selected, at = self.selected_key(), self.cursor_row
        self.clear()
        for key, cells in wanted.items():
            self.add_row(*cells, key=key)
        if wanted:
            row = list(wanted).index(selected) if selected in wanted else min(at, len(wanted) - 1)
            self.move_cursor(row=row, animate=False)

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return key
