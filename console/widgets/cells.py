"""What the panels share: numbers as right-aligned Text (never parsed as markup), market times, durations,
theme colours, and a table that updates rows in place by key."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget
from textual.widgets import DataTable


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
            for key in kept:
                self._update(key, self._shown[key], wanted[key])
            for key in order[len(kept):]:
                self.add_row(*wanted[key], key=key)
        else:
            self._refill(wanted)
        self._shown = wanted

    def _update(self, key: str, before: tuple[object, ...], after: tuple[object, ...]) -> None:
        for column, old, new in zip(self.columns.values(), before, after, strict=True):
            if not same_cell(old, new):
                # a wider value widens its column (EMERGENCY_STOPPED after ACTIVE); a narrower one leaves it be
                self.update_cell(key, column.key, new, update_width=cell_width(new) > column.content_width)

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
