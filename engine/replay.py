"""Replay: market events fed to an engine in order, its SimClock moved to each. A backtest is this."""

from __future__ import annotations

from collections.abc import Iterable

from engine.clock import SimClock
from engine.core import Engine
from engine.model.market import Bar, MarketEvent


def replay(engine: Engine, events: Iterable[MarketEvent], mark_every_bar: bool = True) -> int:
    """Feed events to engine in order, moving its SimClock to each; returns the number of events."""
    clock = engine.clock
    if not isinstance(clock, SimClock):
        raise TypeError("replay needs an Engine built with a SimClock")
    process = engine.process
    advance = clock.catch_up  # market time never runs back, as in the paper session that recorded the events
    count = 0
    for event in events:
        advance(event.end if type(event) is Bar else event.ts)  # event_time(), inlined: once per event
        process(event)
        count += 1
        if mark_every_bar and type(event) is Bar:
            engine.mark_equity(event.end)
    return count
