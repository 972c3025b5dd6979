"""Feed-gap rehearsal: wraps any feed; during each window the engine hears nothing.

What the venue published meanwhile is handed to on_missed (the store keeps it), so `paperdesk
validate` can replay it in the twin and show what the outage changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.data.feed import Feed, FeedBatch, FeedHealth, SteppedFeed
from engine.model.market import MarketEvent


class RehearsedGaps:
    """A feed whose events in [start, end) market-time windows never reach the engine."""

    def __init__(self, feed: Feed, windows: list[tuple[int, int]],
                 on_missed: Callable[[MarketEvent], None] | None = None) -> None:
        self.feed = feed
        self.windows = windows
        self.on_missed = on_missed
        self.name = f"{feed.name} (rehearsed gaps)"
        self._in_gap = False

    def _dropped(self, ts: int) -> bool:
        return any(start <= ts < end for start, end in self.windows)

    async def connect(self) -> None:
        await self.feed.connect()

    async def subscribe(self, symbols: list[str]) -> None:
        await self.feed.subscribe(symbols)

    async def receive(self) -> FeedBatch:
        return self._filter(await self.feed.receive())

    def step_to(self, ts: int) -> FeedBatch:
        """Step the wrapped feed by hand (it must be a SteppedFeed), through the same gaps."""
        feed = self.feed
        if not isinstance(feed, SteppedFeed):
            raise TypeError(f"feed {feed.name!r} cannot be stepped by hand")
        return self._filter(feed.step_to(ts))

    def _filter(self, batch: FeedBatch) -> FeedBatch:
        kept: list[MarketEvent] = []
        for event in batch.events:
            if self._dropped(event.ts):
                if self.on_missed is not None:
                    self.on_missed(event)
            else:
                kept.append(event)
        self._in_gap = self._dropped(batch.received_ns)
        return FeedBatch(batch.received_ns, kept)

    def health(self) -> FeedHealth:
        inner = self.feed.health()
        if self._in_gap:
            return FeedHealth(False, inner.last_event_ns, inner.last_received_ns, "rehearsed feed gap")
        return inner

    def state(self) -> dict[str, Any] | None:
        return self.feed.state()

    def restore(self, state: dict[str, Any]) -> None:
        self.feed.restore(state)

    async def close(self) -> None:
        await self.feed.close()
