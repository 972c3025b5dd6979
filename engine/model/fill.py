"""Fills, each carrying what the simulator assumed when it made it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.model.order import OrderSide


class Liquidity(StrEnum):
    MAKER = "MAKER"
    TAKER = "TAKER"


class FillBasis(StrEnum):
    """What market data a simulated fill was matched against."""

    BOOK = "BOOK"  # walked the displayed order book
    TRADE = "TRADE"  # a resting order met a printed trade (queue position respected)
    TOUCH = "TOUCH"  # a resting limit met a trade printed exactly at its price (optimistic under limit_fill=touch)
    MID = "MID"  # slippage off: a market order filled whole at the mid, displayed depth or not
    BAR_OPEN = "BAR_OPEN"  # bar data: the next bar's open
    BAR_RANGE = "BAR_RANGE"  # bar data: the bar traded through a resting price
    VENUE = "VENUE"  # reported by a real venue, nothing assumed


@dataclass(slots=True)
class Fill:
    """One execution. The last five fields say how optimistic a simulated fill was."""

    fill_id: str
    client_id: str
    strategy: str
    symbol: str
    side: OrderSide
    qty: float
    price: float
    fee: float
    liquidity: Liquidity
    ts: int
    basis: FillBasis
    depth: float  # quantity available at the fill price (book level, printed trade or bar volume)
    latency_ns: int  # order latency applied before the order could match
    mid_at_decision: float  # mid (or last price) when the order was submitted
    slippage_bps: float  # adverse move of price against mid_at_decision, in basis points

    @property
    def cash_flow(self) -> float:
        """Cash change this fill causes, fee included."""
        return -self.side * self.qty * self.price - self.fee
