"""The Feed protocol: where market events come from, whichever venue they are from.

A feed delivers batches of market events in timestamp order, each event stamped with the venue's
time and the batch with when we received it, and reports its own health. The synthetic market,
a recorded file and a real exchange's streams are feeds; feed-gap rehearsal wraps any of them.
The engine judges staleness on its clock (heartbeats), not only when data arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from engine.model.market import Bar, MarketEvent


@dataclass(frozen=True, slots=True)
class FeedBatch:
    """Events received together: venue-stamped events, and our clock when they arrived."""

    received_ns: int
    events: list[MarketEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """What a feed says about itself; the engine's market-data breaker judges the data on its own."""

    connected: bool
    last_event_ns: int | None = None     # venue time of the newest event delivered
    last_received_ns: int | None = None  # our time when it arrived
    detail: str = ""
    # per symbol, our time at its last event (at subscribing, before any): a live feed's per-symbol silence
    received_ns_by_symbol: Mapping[str, int] = field(default_factory=dict)


class Feed(Protocol):
    """One source of market events."""

    name: str

    async def connect(self) -> None: ...

    async def subscribe(self, symbols: list[str]) -> None: ...

    async def receive(self) -> FeedBatch:
        """The next events (an empty batch when none came within the feed's own poll interval)."""
        ...

    def health(self) -> FeedHealth: ...

    def state(self) -> dict[str, Any] | None:
        """What a resumed session needs to continue this feed exactly (None: a live venue continues by itself)."""
        ...

    def restore(self, state: dict[str, Any]) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class HasHistory(Protocol):
    """A feed whose venue keeps history (an exchange's candles), so strategies can warm up before the first live bar."""

    async def history(self, wants: Mapping[tuple[str, str], int], until_ns: int) -> tuple[list[Bar], list[str]]:
        """For each (symbol, timeframe), its last `count` bars that ended by until_ns, as warm-up bars (warmup=True),
        oldest first; and a line for each timeframe the venue keeps no history of (those warm up on live data)."""
        ...


@runtime_checkable
class SteppedFeed(Protocol):
    """A feed that can also be moved to a given market time by hand (the synthetic market: tests, benchmarks)."""

    def step_to(self, ts: int) -> FeedBatch: ...
