"""Strategy decisions, recorded for every evaluation, 'hold' included."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Signal(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"
    FLAT = "FLAT"
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


@dataclass(slots=True)
class Decision:
    """What a strategy decided at ts (the time of the market data it decided on) and why."""

    ts: int
    strategy: str
    symbol: str
    signal: Signal
    confidence: float
    reason: str
    indicators: dict[str, float] = field(default_factory=dict)
    target: float | None = None  # target position for LONG/SHORT/FLAT, quantity for BUY/SELL
