"""A panel table's line drawn straight from its cells, as DataTable draws it but without Rich's layout machinery.

DataTable renders every cell through the console (Styled(Padding(cell)) and render_lines) and forgets every line
it drew whenever any cell changes; at 50 symbols and ten refreshes a second, painting the panels took half the
process's time (bench/console_load.py). Here a row's line is a few segments per cell: the cell's words cut to the
column, placed as the cell justifies them, between the table's padding, with the row's style under and the
cursor's colour over, as DataTable composes them. DeskTable keeps each row's line until that row changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

JUSTIFIED = ("left", "right", "center", "full")  # Rich pads these inside the text, in its style


@dataclass(frozen=True)
class LineStyle:
    """How one line is drawn: under (the row's style and the cursor's, as DataTable's pre_style), over (the
    cursor's colour, DataTable's post_style), and what the space right of the last column takes."""

    under: Style
    over: Style
    rest: Style


def cell_segments(cell: object, width: int, padding: int, style: LineStyle, console: Console) -> list[Segment]:
    """One cell, exactly width cells wide."""
    text = cell if isinstance(cell, Text) else Text(str(cell))
    inner = max(0, width - 2 * padding)
    if text.cell_len > inner:
        text = text.copy()
        text.truncate(inner, overflow="crop")
    gap = inner - text.cell_len
    left = gap if text.justify == "right" else gap // 2 if text.justify == "center" else 0
    own = console.get_style(text.style) if isinstance(text.style, str) else text.style
    inside = style.under + own + style.over if text.justify in JUSTIFIED else style.under + style.over
    edge = style.under + style.over
    out = [Segment(" " * (padding + (left if text.justify not in JUSTIFIED else 0)), edge)]
    if left and text.justify in JUSTIFIED:
        out.append(Segment(" " * left, inside))
    words = style.under + own  # Text.render leaves the text's own style to whoever renders it
    for segment in text.render(console):
        out.append(Segment(segment.text, (words + segment.style if segment.style else words) + style.over))
    right = gap - left
    if right and text.justify in JUSTIFIED:
        out.append(Segment(" " * right, inside))
        right = 0
    out.append(Segment(" " * (padding + right), edge))
    return out


def row_strip(cells: Sequence[object], widths: Sequence[int], padding: int, styles: Sequence[LineStyle],
              total: int, console: Console) -> Strip:
    """A whole row, styles[i] for cells[i], the rest of the line out to total cells in the last style's rest."""
    segments: list[Segment] = []
    for cell, width, style in zip(cells, widths, styles, strict=True):
        segments.extend(cell_segments(cell, width, padding, style, console))
    used = sum(widths)
    if total > used:
        segments.append(Segment(" " * (total - used), styles[-1].rest if styles else Style()))
    return Strip(segments, max(total, used))
