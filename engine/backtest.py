"""Backtest = replay: the same Engine driven by a SimClock over recorded or file market data."""

from __future__ import annotations

from collections.abc import Iterable

from engine.clock import SimClock
from engine.core import Engine
from engine.model.market import Bar, MarketEvent


def event_time(event: MarketEvent) -> int:
    """When an event became known: a bar at its end, everything else at its timestamp."""
    return event.end if type(event) is Bar else event.ts


def replay(engine: Engine, events: Iterable[MarketEvent], mark_every_bar: bool = True) -> int:
    """Feed events to engine in order, moving its SimClock to each; returns the number of events."""
    clock = engine.clock
    if not isinstance(clock, SimClock):
        raise TypeError("replay needs an Engine built with a SimClock")
    process = engine.process
    advance = clock.advance_to
    count = 0
    for event in events:
        advance(event.end if type(event) is Bar else event.ts)
        process(event)
        count += 1
        if mark_every_bar and type(event) is Bar:
            engine.mark_equity(event.end)
    return count
