"""#strategies: each strategy's effective trading state (its own restriction or the portfolio's, the tighter), what
it holds, its marked P&L, round trips, win rate, risk phase and behaviour score with its recent trend.

A strategy's score is its latest live score from the snapshot; its trend is its own behaviour series (read off the
event loop by the app), the title's the portfolio's, labelled so. A session saved before the series had strategies
has only the portfolio's. A session that is not saved has no live score, and says so."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text

from console.widgets.cells import DeskTable, num, pnl, retitle, sparkline, tone
from engine.snapshot import EngineSnapshot, StrategyView

TREND_POINTS = 12


class StrategiesTable(DeskTable):
    def __init__(self) -> None:
        super().__init__("Strategies", ("name", "state", "position", "P&L", "trades", "win", "phase", "behaviour",
                                        "trend"), id="strategies")
        self.portfolio: list[float] = []  # the portfolio's live behaviour scores, oldest first
        self.history: dict[str, list[float]] = {}  # strategy -> its own, where its series has them
        self.threshold = 85.0

    def set_history(self, portfolio: Sequence[float], history: Mapping[str, Sequence[float]],
                    threshold: float) -> None:
        self.portfolio = list(portfolio)
        self.history = {name: list(scores) for name, scores in history.items()}
        self.threshold = threshold

    def show(self, snap: EngineSnapshot) -> None:
        self.show_rows({s.name: self._cells(s) for s in snap.strategies})
        if snap.session_id is None:
            retitle(self, subtitle="behaviour: session not saved, no live score")
        elif not self.portfolio:
            retitle(self, subtitle="behaviour: no live score yet")
        else:
            last = self.portfolio[-1]
            mark = "ok" if last >= self.threshold else "LOW"
            own = "" if self.history else " (per strategy: not in the saved series)"
            retitle(self, subtitle=f"portfolio behaviour {last:.1f} {mark} "
                                   f"{sparkline(self.portfolio[-TREND_POINTS:])}{own}")

    def _cells(self, s: StrategyView) -> tuple[object, ...]:
        failed = s.status != "RUNNING"
        if failed:
            state = Text(s.status, style=f"bold reverse {tone(self, 'error')}")
        else:
            restricted = s.state != "ACTIVE"
            state = Text(s.state, style=f"bold {tone(self, 'warning')}" if restricted else tone(self, "success"))
        held = " ".join(f"{symbol.split('/')[0]} {qty:+g}" for symbol, qty in s.positions) or "flat"
        win = "—" if s.win_rate is None else f"{s.win_rate:.0%}"
        if s.behaviour is None:
            score = Text("—", justify="right")
        else:
            ok = s.behaviour >= self.threshold
            score = Text(f"{s.behaviour:.1f}" + ("" if ok else " LOW"), justify="right",
                         style=tone(self, "success") if ok else f"bold {tone(self, 'error')}")
        return (s.name, state, held, pnl(self, s.pnl), num(s.trades, 0), Text(win, justify="right"),
                "—" if s.phase is None else str(s.phase), score,
                sparkline(self.history.get(s.name, [])[-TREND_POINTS:]))

    def selected_name(self) -> str | None:
        return self.selected_key()
