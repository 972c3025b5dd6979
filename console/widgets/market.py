"""#market: each symbol's bid, ask, spread and last trade, and how old its data is (wall seconds from the venue's
own clock when it reports them, else market seconds since the quote last changed)."""

from __future__ import annotations

from rich.text import Text

from console.widgets.cells import DeskTable, num, retitle, tone
from engine.snapshot import EngineSnapshot

STALE_SECONDS = 5.0  # older data is shown as a warning: a strategy may be trading on it


class MarketWatch(DeskTable):
    def __init__(self) -> None:
        super().__init__("Market", ("symbol", "bid", "ask", "spread", "last", "data age"), id="market")

    def show(self, snap: EngineSnapshot) -> None:
        ages = snap.venue.ages_s if snap.venue is not None else {}
        rows: dict[str, tuple[object, ...]] = {}
        for q in snap.quotes:
            if q.symbol in ages:
                age: float | None = ages[q.symbol]
                unit = "s wall"
            else:
                age = None if q.ts is None else (snap.ts - q.ts) / 1e9
                unit = "s mkt"
            if age is None:
                cell = Text("no data", justify="right")
            else:
                stale = age > STALE_SECONDS * (1 if unit == "s wall" else snap.speed)
                cell = Text(f"{age:.1f} {unit}" + (" STALE" if stale else ""), justify="right",
                            style=f"bold {tone(self, 'warning')}" if stale else "")
            rows[q.symbol] = (q.symbol, num(q.bid), num(q.ask), num(q.spread, 4), num(q.last), cell)
        self.show_rows(rows)
        venue = snap.venue
        if venue is None:
            retitle(self, subtitle="")
            return
        detail = f" ({venue.detail})" if venue.detail and not venue.simulated else ""
        recon = f" · recon: {venue.reconciliation}" if venue.reconciliation is not None else ""
        retitle(self, subtitle=f"{venue.name} {venue.state}{detail} · latency {venue.latency()}{recon}")
