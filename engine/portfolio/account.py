"""The account: cash, netting positions per symbol (and per strategy), marks and equity."""

from __future__ import annotations

from engine.model.fill import Fill
from engine.model.position import Position


class Account:
    """Cash moves only by fills: cash = starting_cash + sum(fill.cash_flow)."""

    __slots__ = ("starting_cash", "cash", "fees_paid", "positions", "strategy_qty", "marks", "fill_count")

    def __init__(self, starting_cash: float) -> None:
        self.starting_cash = starting_cash
        self.cash = starting_cash
        self.fees_paid = 0.0
        self.positions: dict[str, Position] = {}
        # net quantity each strategy holds per symbol, so target_position works with several strategies
        self.strategy_qty: dict[tuple[str, str], float] = {}
        self.marks: dict[str, float] = {}
        self.fill_count = 0

    def apply_fill(self, fill: Fill) -> float:
        """Book a fill; returns the P&L it realised (before fees)."""
        signed = fill.side * fill.qty
        self.cash -= signed * fill.price + fill.fee
        self.fees_paid += fill.fee
        self.fill_count += 1
        position = self.positions.get(fill.symbol)
        if position is None:
            position = self.positions[fill.symbol] = Position(fill.symbol)
        key = (fill.strategy, fill.symbol)
        old = self.strategy_qty.get(key, 0.0)
        new = old + signed
        # 1.0 - 0.8 - 0.2 is 5.6e-17, not flat: float dust must not look like a position
        self.strategy_qty[key] = 0.0 if abs(new) <= 1e-9 * max(1.0, abs(old)) else new
        return position.apply(signed, fill.price)

    def position_qty(self, symbol: str) -> float:
        position = self.positions.get(symbol)
        return position.qty if position is not None else 0.0

    def equity(self) -> float:
        """Cash plus the marked value of every position (a position with no mark uses its entry price)."""
        value = self.cash
        for symbol, position in self.positions.items():
            if position.qty:
                value += position.qty * self.marks.get(symbol, position.avg_price)
        return value

    def realised_pnl(self) -> float:
        return sum(p.realised_pnl for p in self.positions.values())

    def unrealised_pnl(self) -> float:
        return sum(p.unrealised(self.marks.get(s, p.avg_price)) for s, p in self.positions.items() if p.qty)
