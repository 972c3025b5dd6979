"""Market data events: trades, order book snapshots and bars. Timestamps are integer nanoseconds.

Hot-path values (these, Decision and Fill) are slotted but not frozen: a frozen dataclass costs
four times as much to build, and millions are built per backtest. Nothing mutates them.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.model.order import OrderSide


@dataclass(slots=True)
class TradeTick:
    """A printed trade; aggressor is the side that took liquidity."""

    ts: int
    symbol: str
    price: float
    size: float
    aggressor: OrderSide


@dataclass(slots=True)
class BookSnapshot:
    """L2 book: bids best (highest) first, asks best (lowest) first, levels as (price, size)."""

    ts: int
    symbol: str
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]

    @property
    def mid(self) -> float:
        return (self.bids[0][0] + self.asks[0][0]) / 2.0


@dataclass(slots=True)
class Bar:
    """OHLCV over [ts, end): known only at end, which is when the engine acts on it."""

    ts: int
    symbol: str
    timeframe: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    end: int
    # history from before the session (a strategy's declared lookback): it warms indicators and is never traded on
    warmup: bool = False


@dataclass(slots=True)
class Heartbeat:
    """No market data came, but market time reached ts: a silent feed is judged on it (and it is recorded,
    so a replay judges it at the same instant)."""

    ts: int
    symbol: str = ""


MarketEvent = TradeTick | BookSnapshot | Bar | Heartbeat


def event_time(event: MarketEvent) -> int:
    """When an event became known: a bar at its end, anything else at its timestamp."""
    return event.end if type(event) is Bar else event.ts
