"""Netting positions with average price and realised P&L."""

from __future__ import annotations

from dataclasses import dataclass

_EPS = 1e-12


@dataclass(slots=True)
class Position:
    """Signed net quantity of one symbol; avg_price is the entry price of what is still open."""

    symbol: str
    qty: float = 0.0
    avg_price: float = 0.0
    realised_pnl: float = 0.0

    def apply(self, signed_qty: float, price: float) -> float:
        """Add a signed fill quantity at price; returns the P&L this fill realised (before fees)."""
        old = self.qty
        new = old + signed_qty
        realised = 0.0
        if old == 0.0 or (old > 0) == (signed_qty > 0):
            self.avg_price = (self.avg_price * abs(old) + price * abs(signed_qty)) / abs(new)
        else:
            closed = min(abs(signed_qty), abs(old))
            realised = closed * (price - self.avg_price) * (1.0 if old > 0 else -1.0)
            if abs(new) <= _EPS * max(1.0, abs(old)):
                new = 0.0
                self.avg_price = 0.0
            elif (new > 0) != (old > 0):
                self.avg_price = price  # flipped: the remainder opened at this price
        self.qty = new
        self.realised_pnl += realised
        return realised

    def unrealised(self, mark: float) -> float:
        return self.qty * (mark - self.avg_price)
