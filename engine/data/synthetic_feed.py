"""The simulated venue's market data as a Feed: the synthetic market stepped on a (sped-up) wall clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from engine.clock import LET_IN_EVERY_S, LiveClock, LoopShare
from engine.data.feed import FeedBatch, FeedHealth
from engine.data.synthetic import SyntheticMarket
from engine.model.market import MarketEvent


class SyntheticFeed:
    """Every tick_interval wall seconds, the market moves to the clock's now and describes itself."""

    name = "simulated"

    def __init__(self, market: SyntheticMarket, clock: LiveClock, tick_interval_s: float) -> None:
        self.market = market
        self.clock = clock
        self.interval = tick_interval_s
        self._last_ns = clock.now_ns()
        self._last_event_ns: int | None = None
        self._connected = False

    async def connect(self) -> None:
        self._connected = True

    async def subscribe(self, symbols: list[str]) -> None:
        """The synthetic market always describes every configured symbol."""

    async def receive(self) -> FeedBatch:
        """step_to() the clock's now, letting the loop in every LET_IN_EVERY_S while the market is described (50
        symbols take several ms)."""
        await asyncio.sleep(self.interval)
        ts = self.clock.now_ns()
        events: list[MarketEvent] = []
        share = LoopShare(LET_IN_EVERY_S)
        for quotes in self._moves_to(ts):
            events.extend(quotes)
            if share.due():
                await share.let_in()
        return FeedBatch(ts, events)

    def step_to(self, ts: int) -> FeedBatch:
        """The market moves to ts and describes itself there."""
        return FeedBatch(ts, [event for quotes in self._moves_to(ts) for event in quotes])

    def _moves_to(self, ts: int) -> Iterator[list[MarketEvent]]:
        """Each symbol's events as the market moves to ts (none when a coarse clock did not move); the feed's time
        moves once every symbol is described."""
        if ts <= self._last_ns:
            return
        yield from self.market.moves(ts, (ts - self._last_ns) / 1e9)
        self._last_ns = self._last_event_ns = ts

    def health(self) -> FeedHealth:
        return FeedHealth(self._connected, self._last_event_ns, self._last_event_ns, "in-process synthetic market")

    def state(self) -> dict[str, Any] | None:
        # the last step's time too: the next step's length (and so its randomness) depends on it
        return {**self.market.state(), "feed_ts": self._last_ns}

    def restore(self, state: dict[str, Any]) -> None:
        self.market.restore(state)
        self._last_ns = int(state.get("feed_ts", self._last_ns))  # stored before feed_ts was kept: from now

    async def close(self) -> None:
        self._connected = False
