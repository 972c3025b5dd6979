"""The behaviour screen: the session validated against its twin backtest, per strategy, with the differences.

The validation replays the session through the twin (seconds on a long session), so it runs in a child process
behind a loading indicator; F5 or u runs it again (r is the app's resume key).
"""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Sparkline, Static

from console.desk import Desk
from console.desk_reads import NOT_PROVEN, PROVEN, UNEXPLAINED, BehaviourView, behaviour, verdict
from console.screens.detail import NOT_SAVED, DeskScreen, fill, market_time, table
from engine.validation.matching import WEIGHTS, DecisionRecord, Score
from engine.validation.validate import Difference

COMPONENTS = tuple(WEIGHTS)  # signal_agreement, timing, count_ratio, matched_share: the names validation uses


def score_cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


class BehaviourScreen(DeskScreen):
    """Score, its four components per strategy, the live score's trend, and the differences (unexplained first)."""

    BINDINGS = [Binding("f5,u", "revalidate", "Validate again")]
    DEFAULT_CSS = """
    BehaviourScreen #validation { height: auto; }
    BehaviourScreen #trend { height: 3; margin-bottom: 1; }
    """

    def __init__(self, desk: Desk) -> None:
        super().__init__(desk)
        self.differences: list[Difference] = []

    def body(self) -> ComposeResult:
        with Vertical(id="validation"):
            yield Static("Validating the session against its twin backtest...", id="score", markup=False)
            yield table("components", "Per strategy (each component 0-100)", "strategy", "score", *COMPONENTS,
                        "paper", "twin", "matched", "unmatched")
            yield Static("", id="trend-label", markup=False)
            yield Sparkline([], id="trend")
            yield table("differences", "Differences (unexplained first; the selected one's proof below)", "cause",
                        "time", "strategy", "symbol", "kind", "paper", "twin", "why")
            yield Static("", id="why", markup=False)

    def on_mount(self) -> None:
        if not self.saved:
            snap = self.desk.snapshot()
            live = "none yet" if snap.behaviour_score is None else f"{snap.behaviour_score:.2f}"
            self.say(f"{NOT_SAVED} Validation replays the saved session, so there is nothing to validate "
                     f"(live score: {live}).")
            self.query_one("#score", Static).update("")
            return
        self.action_revalidate()

    def action_revalidate(self) -> None:
        if not self.saved:
            return
        self.query_one("#validation").loading = True
        self.say("")
        self.read(behaviour, then=self.show, group="validate", child=True)

    def failed(self, text: str) -> None:
        self.query_one("#validation").loading = False
        self.query_one("#score", Static).update("")
        self.say(f"Cannot validate: {text}")

    def show(self, view: BehaviourView) -> None:
        self.query_one("#validation").loading = False
        report = view.report
        s = report.score
        text = Text()
        for note in report.notes:
            text.append(f"{note}\n", style="italic")
        if s.score is None:
            text.append("behaviour score: none yet (neither side has an entry or exit to compare)\n", style="bold")
        else:
            text.append(f"behaviour score {s.score:.2f} / 100  ", style="bold")
            text.append("PASS" if report.passed else "FAIL", style="bold green" if report.passed else "bold red")
            text.append(f"   until {market_time(report.until_ts)} (market time)\n")
            text.append("  " + "  ".join(f"{name} {score_cell(getattr(s, name))} x{weight:g}"
                                         for name, weight in WEIGHTS.items()) + "\n")
        for check in report.checks:
            value = "n/a" if check.value is None else f"{check.value:g}"
            text.append(f"  {'ok  ' if check.passed else 'FAIL'} {check.name} = {value} (needs {check.threshold})\n",
                        style="" if check.passed else "red")
        verdicts = Counter(verdict(d) for d in view.differences)
        text.append(f"differences: {len(view.differences)} ({verdicts[PROVEN]} proven by replay, "
                    f"{verdicts[UNEXPLAINED]} unexplained, {verdicts[NOT_PROVEN]} not proven)")
        self.query_one("#score", Static).update(text)
        fill(self.query_one("#components", DataTable),
             [(name, *self._score_cells(score)) for name, score in [("(all)", s), *report.per_strategy.items()]])
        self._show_trend(view.trend)
        self.differences = view.differences
        fill(self.query_one("#differences", DataTable), [self._difference_cells(d) for d in view.differences])
        self._explain(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "differences":
            self._explain(event.cursor_row)

    def _explain(self, row: int) -> None:
        """The selected difference's proof in full (the table's last column cuts it): its cause proven by replay, or
        the condition sets replayed in vain, or why it was not proven; then the hints, which prove nothing."""
        why = self.query_one("#why", Static)
        if not 0 <= row < len(self.differences):
            why.update("")
            return
        d = self.differences[row]
        text = Text(f"{d.kind}: {d.strategy} {d.symbol}\n", style="bold")
        if d.indicators:
            text.append("  indicators differ: " + ", ".join(f"{k} paper {a} twin {b}"
                                                            for k, (a, b) in d.indicators.items()) + "\n")
        found = verdict(d)
        for cause in d.causes:
            text.append(f"  cause (proven by replay) [{cause.kind}] {market_time(cause.ts)}: {cause.text}\n",
                        style="bold")
        if found == PROVEN:
            if d.proof:  # the other sets that also reproduced it
                text.append(f"  {d.proof}\n")
        else:
            text.append(f"  {d.proof}\n", style=f"bold {'red' if found == UNEXPLAINED else 'yellow'}")
        if found == UNEXPLAINED and d.tried:
            text.append(f"  condition sets tried ({len(d.tried)}):\n")
            text.append("".join(f"    tried: {line}\n" for line in d.tried))
        for hint in d.hints:
            text.append(f"  hint (not proven) [{hint.kind}] {market_time(hint.ts)}: {hint.text}\n", style="dim")
        if not d.hints:
            text.append("  hints (not proven): nothing recorded where the two sides parted\n", style="dim")
        why.update(text)

    @staticmethod
    def _score_cells(s: Score) -> list[str]:
        return [score_cell(s.score), *(score_cell(getattr(s, name)) for name in COMPONENTS), str(s.paper_decisions),
                str(s.twin_decisions), str(s.matched), str(s.unmatched_paper + s.unmatched_twin)]

    def _show_trend(self, trend: list[tuple[int, float | None]]) -> None:
        scores = [score for _, score in trend if score is not None]
        label = self.query_one("#trend-label", Static)
        if not scores:
            label.update("Live score trend: none recorded yet (the session scores itself at its live interval)")
        else:
            label.update(f"Live score trend ({len(scores)} points) from {market_time(trend[0][0])} to "
                         f"{market_time(trend[-1][0])}; min {min(scores):.2f}, max {max(scores):.2f}, "
                         f"last {scores[-1]:.2f}")
        self.query_one("#trend", Sparkline).data = scores

    @staticmethod
    def _difference_cells(d: Difference) -> list[object]:
        when = min(r.ts for r in (d.paper, d.twin) if r is not None)
        found = verdict(d)
        if found == PROVEN:
            cause: object = ", ".join(dict.fromkeys(c.kind for c in d.causes))
            why = f"proven by replay: {d.causes[0].text}"
        else:
            cause = Text(found.upper(), style=f"bold {'red' if found == UNEXPLAINED else 'yellow'}")
            why = d.proof.removeprefix(f"{found}: ")
        return [cause, market_time(when), d.strategy, d.symbol, d.kind, _side(d.paper), _side(d.twin), why]


def _side(record: DecisionRecord | None) -> str:
    if record is None:
        return "no decision"
    return record.signal + (f" (refused by {record.denied_rule})" if record.denied_rule else "")
