"""Closed trades from fills, their statistics, and P&L attribution by strategy, symbol, side and hour.

A trade runs from flat to flat per strategy and symbol (engine/risk/round_trips.py books them the
same way for the breakers and Kelly sizing); its P&L is net of fees. Attribution uses closed trades,
so what is still open is not in it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from engine.model.fill import Fill
from engine.model.order import OrderSide
from engine.risk.round_trips import RoundTrips

HOUR_NS = 3_600 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    strategy: str
    symbol: str
    side: str       # LONG or SHORT: the position the trade held
    closed_ts: int
    pnl: float


@dataclass(frozen=True, slots=True)
class TradeMetrics:
    trades: int
    wins: int
    losses: int
    win_rate: float
    profit_factor: float     # gross wins / gross losses; inf with no loss, NaN with no trade
    expectancy: float        # mean P&L per trade
    average_win: float
    average_loss: float      # negative

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def closed_trades(fills: Iterable[Fill]) -> list[ClosedTrade]:
    """Every trade the fills closed, in order."""
    book = RoundTrips()
    out = []
    for fill in fills:
        pnl = book.on_fill(fill)
        if pnl is not None:
            # a closing fill trades against the position: a SELL closes a LONG
            side = "LONG" if fill.side is OrderSide.SELL else "SHORT"
            out.append(ClosedTrade(fill.strategy, fill.symbol, side, fill.ts, pnl))
    return out


def trade_metrics(trades: list[ClosedTrade]) -> TradeMetrics:
    wins = [t.pnl for t in trades if t.pnl > 0]
    losses = [t.pnl for t in trades if t.pnl < 0]  # a breakeven trade is neither
    n = len(trades)
    gross_loss = -sum(losses)
    return TradeMetrics(
        trades=n, wins=len(wins), losses=len(losses),
        win_rate=len(wins) / n if n else math.nan,
        profit_factor=(sum(wins) / gross_loss if gross_loss else math.inf) if n else math.nan,
        expectancy=sum(t.pnl for t in trades) / n if n else math.nan,
        average_win=sum(wins) / len(wins) if wins else math.nan,
        average_loss=sum(losses) / len(losses) if losses else math.nan)


def attribution(trades: list[ClosedTrade]) -> dict[str, dict[str, float]]:
    """Closed-trade P&L summed by strategy, by symbol, by side and by UTC hour of the close."""
    out: dict[str, dict[str, float]] = {k: defaultdict(float) for k in ("strategy", "symbol", "side", "hour")}
    for t in trades:
        out["strategy"][t.strategy] += t.pnl
        out["symbol"][t.symbol] += t.pnl
        out["side"][t.side] += t.pnl
        out["hour"][f"{t.closed_ts // HOUR_NS % 24:02d}"] += t.pnl
    return {k: dict(sorted(v.items())) for k, v in out.items()}
