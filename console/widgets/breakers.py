"""#breakers: restricted scopes first (with the countdown of a cooldown), then every breaker's gauge, closest to
tripping first."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from console.widgets.cells import DeskTable, retitle, time_left, tone
from engine.snapshot import EngineSnapshot

BAR = 10  # cells in a gauge's bar


def gauge_bar(usage: float) -> str:
    filled = min(BAR, max(0, round(usage * BAR)))
    return "█" * filled + "░" * (BAR - filled) + f" {usage:4.0%}"


class BreakersTable(DeskTable):
    def __init__(self) -> None:
        super().__init__("Breakers", ("breaker", "scope", "used", "value / limit", "detail"), id="breakers")
        self.gauges: dict[str, dict[str, Any]] = {}  # row key -> the gauge (or restricted scope) it shows

    def show(self, snap: EngineSnapshot) -> None:
        rows: dict[str, tuple[object, ...]] = {}
        self.gauges = {}
        for scope in snap.risk.get("scopes", ()):
            left = "" if scope["until"] is None else time_left(scope["until"], snap.ts, snap.speed)
            style = f"bold reverse {tone(self, 'error')}" if scope["state"] == "EMERGENCY_STOPPED" \
                else f"bold {tone(self, 'warning')}"
            key = f"state:{scope['scope']}"
            self.gauges[key] = scope
            rows[key] = (Text(scope["state"], style=style), scope["scope"], Text(left or "until resumed"),
                         "", f"{scope['source']}: {scope['cause']}")
        for g in sorted(snap.risk.get("gauges", ()), key=lambda g: -g["usage"]):
            style = f"bold {tone(self, 'error')}" if g["usage"] >= 1 else tone(self, "warning") if g["warn"] else ""
            key = f"{g['breaker']}:{g['scope']}"
            self.gauges[key] = g
            rows[key] = (g["breaker"], g["scope"], Text(gauge_bar(g["usage"]), style=style),
                         Text(f"{g['value']:,.4g} / {g['limit']:,.4g}", justify="right"), g["detail"])
        self.show_rows(rows)
        trips = snap.risk.get("trips", 0)
        retitle(self, subtitle=f"{trips} trip(s) this session" if trips else "")

    def selected(self) -> tuple[str, str] | None:
        """(breaker, scope) of the selected gauge; None on a restricted scope's row or an empty table."""
        key = self.selected_key()
        g = self.gauges.get(key or "")
        return None if g is None or "breaker" not in g else (g["breaker"], g["scope"])
