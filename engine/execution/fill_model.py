"""How pessimistic the paper venue's matching is."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LimitFillRule(StrEnum):
    """When a resting limit order fills against printed trades."""

    QUEUE = "queue"  # trades at our price first use up the size displayed ahead of us; through-trades fill
    TRADE_THROUGH = "trade_through"  # only trades strictly through our price fill
    TOUCH = "touch"  # any trade at our price fills (what freqtrade and hummingbot assume): optimistic


@dataclass(frozen=True, slots=True)
class FillModel:
    """latency_ns delays every order's arrival at the venue; bar_slippage_bps worsens bar-open fills.

    slippage=False is a backtest's assumption: a market order fills whole at the book's mid, whatever
    the book displays (the fill still records the displayed depth, so the ledger shows the optimism).
    """

    latency_ns: int = 0
    limit_fill: LimitFillRule = LimitFillRule.QUEUE
    bar_slippage_bps: float = 0.0
    slippage: bool = True
