"""Closed trades per strategy: a round trip runs from flat to flat (a flip closes one and opens the next).

Feeds the consecutive-losses breaker and Kelly sizing; P&L is the strategy's own, net of fees.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model.fill import Fill
from engine.model.position import Position


@dataclass(slots=True)
class TradeStats:
    wins: int = 0
    losses: int = 0
    win_total: float = 0.0
    loss_total: float = 0.0
    consecutive_losses: int = 0

    @property
    def trades(self) -> int:
        return self.wins + self.losses

    def kelly(self) -> float | None:
        """Full-Kelly fraction W - (1 - W) / R; None until there are both wins and losses."""
        if not self.wins or not self.losses:
            return None
        w = self.wins / self.trades
        r = (self.win_total / self.wins) / (self.loss_total / self.losses)
        return w - (1.0 - w) / r


class RoundTrips:
    """Tracks each strategy's position per symbol and books a trade whenever it returns to flat."""

    def __init__(self) -> None:
        self.stats: dict[str, TradeStats] = {}
        self._positions: dict[tuple[str, str], Position] = {}
        self._open_pnl: dict[tuple[str, str], float] = {}

    def on_fill(self, fill: Fill) -> float | None:
        """Book a fill; returns the closed trade's P&L when this fill closed one, else None."""
        key = (fill.strategy, fill.symbol)
        position = self._positions.get(key)
        if position is None:
            position = self._positions[key] = Position(fill.symbol)
        before = position.qty
        signed = fill.side * fill.qty
        realised = position.apply(signed, fill.price)
        closing_share = 1.0
        flipped = before != 0.0 and position.qty != 0.0 and (before > 0) != (position.qty > 0)
        if flipped:  # the fee is split between the trade that closed and the one that opened
            closing_share = abs(before) / fill.qty
        pnl = self._open_pnl.get(key, 0.0) + realised - fill.fee * closing_share
        if position.qty != 0.0 and not flipped:
            self._open_pnl[key] = pnl
            return None
        self._open_pnl[key] = -fill.fee * (1.0 - closing_share) if flipped else 0.0
        if before == 0.0:
            return None
        stats = self.stats.setdefault(fill.strategy, TradeStats())
        if pnl < 0:
            stats.losses += 1
            stats.loss_total -= pnl
            stats.consecutive_losses += 1
        else:
            stats.wins += 1
            stats.win_total += pnl
            stats.consecutive_losses = 0
        return pnl

    def entry_price(self, strategy: str, symbol: str) -> float | None:
        """The strategy's own average entry price of what it holds in symbol; None when flat."""
        position = self._positions.get((strategy, symbol))
        return position.avg_price if position is not None and position.qty else None

    def marked_pnl(self, strategy: str, marks: dict[str, float]) -> float:
        """The strategy's closed trades net of fees, plus its open trades so far (fees in) marked at marks."""
        stats = self.of(strategy)
        total = stats.win_total - stats.loss_total
        for (name, symbol), position in self._positions.items():
            if name == strategy:
                total += self._open_pnl.get((name, symbol), 0.0)
                if position.qty:
                    total += position.unrealised(marks.get(symbol, position.avg_price))
        return total

    def of(self, strategy: str) -> TradeStats:
        return self.stats.get(strategy) or TradeStats()
