"""The decision journal: a strategy's decisions, holds included, newest first, a page at a time.

Each row shows what the strategy saw (its indicators), why it decided, what became of it (its order, or the rule
that refused it with the limit and value), and the twin backtest's decision beside it. The page comes straight from
the database; the twin's side comes from one validation run in the background and fills in when it is done.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from console.desk import Desk
from console.desk_reads import (
    DecisionRow,
    TwinBeside,
    decision_page,
    strategy_names,
)
from console.screens.detail import NOT_SAVED, DeskScreen, fill, indicators_text, market_time, table
from engine.validation.validate import ValidationReport, validate

PAGE = 200  # rows per page: a strategy's 100,000 decisions are never all on screen
TWIN_PENDING = "..."


class JournalScreen(DeskScreen):
    """Browse one strategy's decisions; [ and ] switch strategy, < and > page newer and older, F5 or u reloads."""

    BINDINGS = [
        Binding("left_square_bracket", "strategy(-1)", "Previous strategy"),
        Binding("right_square_bracket", "strategy(1)", "Next strategy"),
        Binding("less_than_sign", "newer", "Newer page"),
        Binding("greater_than_sign", "older", "Older page"),
        Binding("f5,u", "reload", "Reload"),
    ]
    SCROLLS = False  # the table scrolls itself, drawing only the rows in view
    DEFAULT_CSS = """
    JournalScreen #journal { height: 1fr; max-height: 100%; }
    """

    def __init__(self, desk: Desk, strategy: str | None) -> None:
        super().__init__(desk)
        self.strategy = strategy
        self.strategies: list[str] = [] if strategy is None else [strategy]
        self.rows: list[DecisionRow] = []
        self.newer_starts: list[int | None] = []  # each newer page's before_seq, to page back to it
        self.before_seq: int | None = None          # this page's: None is the newest
        self.twin: TwinBeside | None = None
        self.twin_note = "the twin's side: validating..."

    def body(self) -> ComposeResult:
        yield Static("Decision journal", id="heading", markup=False)
        yield table("journal", "Decisions, newest first, the twin backtest's beside each", "time", "symbol",
                    "signal", "twin", "conf", "reason", "outcome", "indicators")

    def on_mount(self) -> None:
        if not self.saved:
            self.say(f"{NOT_SAVED} Decisions are kept only in the database, so there is no journal to browse.")
            return
        self.read(strategy_names, then=self._got_names, group="names")
        self.action_reload()

    def _got_names(self, names: list[str]) -> None:
        self.strategies = names or self.strategies
        if self.strategy is None and names:
            self.strategy = names[0]
            self._load_page()
        self._heading()

    def action_reload(self) -> None:
        if not self.saved:
            return
        self.twin = None
        self.twin_note = "the twin's side: validating..."
        self._load_page()
        self.read(validate, then=self._got_twin, otherwise=self._no_twin, group="validate", child=True)

    def action_strategy(self, step: int) -> None:
        if not self.strategies or self.strategy is None:
            return
        at = self.strategies.index(self.strategy) if self.strategy in self.strategies else 0
        self.strategy = self.strategies[(at + step) % len(self.strategies)]
        self.newer_starts.clear()
        self.before_seq = None
        self._load_page()

    def action_older(self) -> None:
        if len(self.rows) < PAGE:
            self.notify("This is the oldest page.", timeout=3)
            return
        self.newer_starts.append(self.before_seq)
        self.before_seq = self.rows[-1].seq
        self._load_page()

    def action_newer(self) -> None:
        if not self.newer_starts:
            self.notify("This is the newest page.", timeout=3)
            return
        self.before_seq = self.newer_starts.pop()
        self._load_page()

    def _load_page(self) -> None:
        if self.strategy is not None:
            self.read(decision_page, self.strategy, self.before_seq, PAGE, then=self._show_page, group="page")

    def _show_page(self, rows: list[DecisionRow], keep_cursor: bool = False) -> None:
        self.rows = rows
        journal = self.query_one("#journal", DataTable)
        selected = journal.cursor_row if keep_cursor else 0
        fill(journal, [(market_time(row.ts), row.symbol, _signal(row), self._twin_cell(row), f"{row.confidence:.2f}",
                        row.reason, _outcome(row), indicators_text(row.indicators)) for row in rows],
             keys=[str(row.seq) for row in rows])
        journal.move_cursor(row=selected)
        self._heading()

    def _got_twin(self, report: ValidationReport) -> None:
        self.twin = TwinBeside(report)
        only = sum(self.twin.twin_only.values())
        self.twin_note = (f"the twin's side as validated up to {market_time(report.until_ts)}"
                          + (f"; {only} twin decisions had no paper decision to match (see the behaviour screen)"
                             if only else ""))
        self._show_page(self.rows, keep_cursor=True)  # the page again with the twin's column filled in and sized to it

    def _no_twin(self, text: str) -> None:
        self.twin_note = "the twin's side: not available (below)"
        self.say(f"Cannot validate: {text}")
        if self.rows:
            self._show_page(self.rows, keep_cursor=True)

    def _twin_cell(self, row: DecisionRow) -> Text:
        if self.twin is None:
            return Text(TWIN_PENDING if self.twin_note.endswith("validating...") else "-")
        side = self.twin.beside(row)
        if side is None:
            return Text("not validated", style="dim")
        shown = "no entry or exit" if side.signal is None else side.signal
        if side.ts is not None and side.ts != row.ts:
            shown += f" ({(side.ts - row.ts) / 1e9:+g} s)"
        mark = "=" if side.agrees else "≠"
        return Text(f"{mark} {shown} [{side.how}]", style="" if side.agrees else "bold yellow")

    def _heading(self) -> None:
        if self.strategy is None:
            self.query_one("#heading", Static).update("Decision journal: no strategies in this session")
            return
        page = len(self.newer_starts) + 1
        first, last = (self.rows[0].seq, self.rows[-1].seq) if self.rows else (None, None)
        span = f"decisions #{last}-#{first}" if first is not None else "no decisions"
        others = "  ".join(self.strategies)
        self.query_one("#heading", Static).update(
            f"Decision journal of {self.strategy} (strategies: {others}; [ ] switch)\n"
            f"page {page}, {span}, newest first ({PAGE} a page; < newer, > older); {self.twin_note}")


def _signal(row: DecisionRow) -> Text:
    style = "dim" if row.signal == "HOLD" else "bold"
    return Text(row.signal, style=style)


def _outcome(row: DecisionRow) -> Text:
    if row.denied_rule is not None:
        return Text(f"refused {row.refusal()}", style="red")
    if row.order_id is not None:
        return Text(f"order {row.order_id}")
    return Text("-", style="dim")
