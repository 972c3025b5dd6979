"""#equity: the equity curve against market time (UTC labels), with a line at each restart, portfolio halt and
emergency stop, lettered so they read without colour. Redrawn by the app's chart timer, not per snapshot."""

from __future__ import annotations

import time

from textual.color import Color
from textual_plotext import PlotextPlot

from console.widgets.cells import retitle
from engine.snapshot import EngineSnapshot

TICKS = 5
MARKS = {"HALTED": ("H", "warning"), "EMERGENCY_STOPPED": ("E", "error")}  # anything else is "restart N": R


def tick_labels(first_ns: int, last_ns: int) -> tuple[list[float], list[str]]:
    """TICKS evenly spaced market times (seconds) and their labels: HH:MM:SS within an hour, HH:MM within a day,
    else the date too."""
    span = max(1, last_ns - first_ns)
    form = "%H:%M:%S" if span < 3600e9 else "%H:%M" if span < 86400e9 else "%m-%d %H:%M"
    stamps = [first_ns + span * i / (TICKS - 1) for i in range(TICKS)]
    return [s / 1e9 for s in stamps], [time.strftime(form, time.gmtime(s / 1e9)) for s in stamps]


class EquityChart(PlotextPlot):
    ALLOW_MAXIMIZE = True
    can_focus = True

    def __init__(self) -> None:
        super().__init__(id="equity", classes="panel")
        self.border_title = "Equity (market time, UTC)"

    def show(self, snap: EngineSnapshot) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        series, stamps = snap.equity_series, snap.equity_ts
        if len(series) >= 2 and len(stamps) == len(series):
            xs = [ts / 1e9 for ts in stamps]
            plt.plot(xs, list(series), marker="braille")
            plt.xticks(*tick_labels(stamps[0], stamps[-1]))
            low, high = min(series), max(series)
            for ts, what in snap.markers:
                if stamps[0] <= ts <= stamps[-1]:
                    letter, variable = MARKS.get(what, ("R", "accent"))
                    colour = Color.parse(self.app.theme_variables.get(variable, "white")).rgb
                    plt.vline(ts / 1e9, colour)
                    plt.text(letter, ts / 1e9, high if high > low else high + 1, color=colour)
        shown = sorted({MARKS.get(what, ("R", ""))[0] for _, what in snap.markers})
        retitle(self, subtitle="  ".join({"H": "H halt", "E": "E emergency stop", "R": "R restart"}[m]
                                         for m in shown))
        self.refresh()
