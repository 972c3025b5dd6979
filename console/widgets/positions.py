"""#positions: what is held now; a position that goes flat leaves the table (its realised P&L stays in the title)."""

from __future__ import annotations

from console.widgets.cells import DeskTable, num, pnl, retitle
from engine.snapshot import EngineSnapshot

TITLE = "Positions"


class PositionsTable(DeskTable):
    def __init__(self) -> None:
        super().__init__(TITLE, ("symbol", "qty", "avg price", "mark", "unrealised", "realised"), id="positions")

    def show(self, snap: EngineSnapshot) -> None:
        held = [p for p in snap.positions if p.qty]
        self.show_rows({p.symbol: (p.symbol, num(p.qty, 4, signed=True), num(p.avg_price), num(p.mark),
                                   pnl(self, p.unrealised), pnl(self, p.realised)) for p in held})
        retitle(self, f"{TITLE} ({len(held)})", f"realised {snap.realised:+,.2f}  unrealised {snap.unrealised:+,.2f}")
