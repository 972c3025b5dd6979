"""What the panels share: numbers as right-aligned Text (never parsed as markup), market times, durations,
theme colours, and a table that updates rows in place by key."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

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


def sparkline(values: Sequence[float], low: float = 0.0, high: float = 100.0) -> str:
    span = high - low or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, max(0, int((v - low) / span * len(SPARKS))))] for v in values)


class DeskTable(DataTable):
    """A panel table: rows keyed by their domain id, updated cell by cell so the cursor and scroll stay put."""

    ALLOW_MAXIMIZE = True

    def __init__(self, title: str, columns: Iterable[str], *, id: str) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True, classes="panel")
        self.border_title = title
        self._columns = tuple(columns)

    def on_mount(self) -> None:
        self.add_columns(*self._columns)

    def upsert(self, key: str, cells: Sequence[object]) -> None:
        if key in self.rows:
            for column, value in zip(self.columns, cells, strict=True):
                self.update_cell(key, column, value, update_width=True)  # EMERGENCY_STOPPED is wider than ACTIVE
        else:
            self.add_row(*cells, key=key)

    def keep_only(self, keys: Iterable[str]) -> None:
        """Rows whose key is not in keys go (a flat position, a filled order)."""
        alive = set(keys)
        for row_key in [k for k in self.rows if k.value not in alive]:
            self.remove_row(row_key)

    def show_in_order(self, rows: Mapping[str, Sequence[object]]) -> None:
        """rows in the given order: cells updated in place while the order holds, the table rebuilt (the cursor kept
        on its row) when it changes."""
        if [k.value for k in self.rows] == list(rows):
            for key, cells in rows.items():
                self.upsert(key, cells)
            return
        selected = self.selected_key()
        self.clear()
        for key, cells in rows.items():
            self.add_row(*cells, key=key)
        if selected is not None and selected in rows:
            self.move_cursor(row=list(rows).index(selected), animate=False)

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return key
