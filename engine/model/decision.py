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


ENGINE_EXIT = "engine exit ["  # the start of every decision the engine made for a strategy (an exit it ordered)


def engine_exit_reason(origin: str, detail: str) -> str:
    """The reason of an exit the engine ordered: its origin (bracket stop-loss, trailing stop, ...) and what it did."""
    return f"{ENGINE_EXIT}{origin}]: {detail}"


def decision_origin(reason: str) -> str:
    """Who made a decision: "strategy", or the engine exit's origin its reason names."""
    if reason.startswith(ENGINE_EXIT):
        end = reason.find("]", len(ENGINE_EXIT))
        if end > 0:
            return reason[len(ENGINE_EXIT):end]
    return "strategy"
