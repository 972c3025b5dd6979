"""#events: the order flow and the engine's log in one sequence (orders, fills, refusals, state changes, breaker
trips, commands and their source), appended by seq so nothing shows twice; when more lines came between two
refreshes than a snapshot carries, a line says how many are not shown (the session's database has them).

It follows the newest line while the view is at the end; scrolled up, it stays where the operator is reading (the
title says so) until they come back to the end. `/` filters it (the app's key opens the filter input)."""

from __future__ import annotations

import re
from collections import deque

from rich.text import Text

from console.widgets.cells import DeskTable, market_time, retitle, tone
from engine.snapshot import EngineSnapshot, EventView

KEPT = 5000           # lines remembered for filtering
SHOWN = 1000          # rows in the table; the oldest go in batches beyond SHOWN + PRUNE_BATCH
PRUNE_BATCH = 200
ORDER_ID = re.compile(r"^(?:order (\S+)|fill \S+ of (\S+))")
TITLE = "Events"


def order_of(line: EventView) -> str | None:
    """The client id an order or fill line is about (Enter opens that order)."""
    if line.kind not in ("order", "fill"):
        return None
    match = ORDER_ID.match(line.text)
    return None if match is None else match.group(1) or match.group(2)


def store_line(snap: EngineSnapshot) -> str:
    """Where the log goes: session 3 (restart 1) · saved 1,234 rows · backlog 0 (or that nothing is saved)."""
    if snap.session_id is None:
        return "not saved (no database)"
    line = (f"session {snap.session_id}" + (f" (restart {snap.restarts})" if snap.restarts else "")
            + f" · saved {snap.store_committed:,} rows · backlog {snap.store_backlog:,}")
    return line + (f" · STORE ERROR: {snap.store_error}" if snap.store_error else "")


class EventLog(DeskTable):
    def __init__(self) -> None:
        super().__init__(TITLE, ("time", "kind", "event"), id="events")
        self.zebra_stripes = False
        self.lines: deque[EventView] = deque(maxlen=KEPT)
        self.last_seq = 0
        self.query_text = ""
        self.following = True
        self._by_key: dict[str, EventView] = {}

    def show(self, snap: EngineSnapshot) -> None:
        retitle(self, subtitle=store_line(snap))
        new = [line for line in snap.event_log if line.seq > self.last_seq]
        if not new:
            return
        missed = new[0].seq - self.last_seq - 1
        if self.last_seq and missed > 0:
            new.insert(0, EventView(new[0].seq - 1, new[0].ts, "engine", "WARN",
                                    f"… {missed} line(s) not shown: more came in one refresh than a snapshot carries"))
        self.last_seq = new[-1].seq
        self.lines.extend(new)
        self._append([line for line in new if self._matches(line)])

    def set_filter(self, text: str) -> None:
        """Only lines containing text (any case); the table is rebuilt from the remembered lines."""
        self.query_text = text.strip().lower()
        self.following = True
        self._rebuild()
        self._follow(True)
        self._title()

    def _rebuild(self) -> None:
        """The table anew from the last SHOWN remembered lines that match (a new filter)."""
        following = self.following
        self.clear()
        self.following = following  # clearing scrolled to the top: not the operator scrolling away
        self._by_key.clear()
        self._add_rows([line for line in self.lines if self._matches(line)][-SHOWN:])

    def _matches(self, line: EventView) -> bool:
        return not self.query_text or self.query_text in f"{line.kind} {line.level} {line.text}".lower()

    def _at_end(self) -> bool:
        return self.scroll_offset.y >= self.max_scroll_y

    def _add_rows(self, lines: list[EventView]) -> None:
        for line in lines:
            key = str(line.seq)
            self._by_key[key] = line
            style = (f"bold {tone(self, 'error')}" if line.level == "ERROR"
                     else tone(self, "warning") if line.level == "WARN" else "")
            self.add_row(market_time(line.ts), line.kind, Text(f"{line.level} {line.text}" if line.level != "INFO"
                                                              else line.text, style=style), key=key)

    def _append(self, lines: list[EventView]) -> None:
        if not lines:
            return
        cursor_at_end = self.cursor_row >= self.row_count - 1
        self._add_rows(lines)
        # pruned only while following: scrolled up, the operator's lines stay put (up to the KEPT remembered)
        if self.following and self.row_count > SHOWN + PRUNE_BATCH:
            for key in self.drop_first(self.row_count - SHOWN):
                del self._by_key[key]
        if self.following:
            self._follow(cursor_at_end)
        self._title()

    def _follow(self, cursor_too: bool) -> None:
        """To the newest line (the cursor too, if it was on the last) in this frame, the rows just added measured
        first: nothing is left for after the refresh (DataTable would scroll a moved cursor into view then, pulling
        back an operator who had just scrolled up)."""
        self.settle()
        if cursor_too and self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)
        self.scroll_end(animate=False, immediate=True)

    def on_mount(self) -> None:  # DeskTable's on_mount runs too (Textual calls each class's handler)
        self.watch(self, "scroll_y", self._scrolled, init=False)

    def _scrolled(self) -> None:
        following = self._at_end()
        if following != self.following:
            self.following = following
            self._title()

    def _title(self) -> None:
        shown = f" matching '{self.query_text}'" if self.query_text else ""
        paused = "" if self.following else " — paused: scrolled up (End resumes)"
        retitle(self, title=f"{TITLE}{shown}{paused}")

    def selected_order(self) -> str | None:
        key = self.selected_key()
        line = self._by_key.get(key or "")
        return None if line is None else order_of(line)
