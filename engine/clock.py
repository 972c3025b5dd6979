"""The only source of "now" in the engine.

LiveClock is wall time (optionally sped up); SimClock is event time, moved by whoever feeds the
engine. A backtest moves a SimClock through recorded events; a paper session on the simulated
venue moves one through the events its LiveClock stamps as the market is generated.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

NS_PER_SECOND = 1_000_000_000


class Clock(Protocol):
    """Integer nanoseconds since the epoch."""

    def now_ns(self) -> int: ...


class LiveClock:
    """Wall time, optionally sped up: with speed=60 one wall second is one market minute.

    Speed lets the simulated venue show a day's worth of bars in a demo; everything that reads
    time (bars, latency, timestamps) sees the same sped-up clock, so nothing disagrees.
    """

    __slots__ = ("speed", "_origin_ns", "_origin_perf")

    def __init__(self, speed: float = 1.0, start_ns: int | None = None) -> None:
        """start_ns sets what now is at construction (a resumed session continues its market time)."""
        if not speed > 0:
            raise ValueError(f"clock speed must be > 0, got {speed}")
        self.speed = speed
        self._origin_ns = time.time_ns() if start_ns is None else start_ns
        self._origin_perf = time.perf_counter_ns()

    def now_ns(self) -> int:
        # monotonic elapsed time keeps the clock from stepping back when NTP adjusts the wall clock
        return self._origin_ns + int((time.perf_counter_ns() - self._origin_perf) * self.speed)


class SimClock:
    """Jumps to each replayed event's timestamp; never moves backwards."""

    __slots__ = ("_now",)

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def advance_to(self, ts: int) -> None:
        if ts < self._now:
            raise ValueError(f"SimClock cannot go back from {self._now} to {ts}")
        self._now = ts

    def catch_up(self, ts: int) -> None:
        """Move to ts if it is later: an event a venue stamped earlier than one already seen is handled at the
        current time. Paper sessions and their replays both follow this rule, so they see the same times."""
        if ts > self._now:
            self._now = ts


def wall_ns() -> int:
    """Wall time for bookkeeping (when a row was saved, a session started); trading never reads it."""
    return time.time_ns()


def monotonic_s() -> float:
    """Seconds on a monotonic clock, for measuring durations (commit times, retry windows)."""
    return time.perf_counter()


# long work on the loop lets it in this often: at 2 ms, a headless session at 500 order events a second saw loop lag
# p99 6.5 ms; at 1 ms, 4.2 ms (bench/console_load.py --no-console). With the console, whose thread takes the
# interpreter in turns, a stretch lasts about twice as long on the wall clock: at 0.5 ms (and SWITCH_SECONDS 0.2 ms)
# the session's loop lag p99 went from 5.2-5.3 ms to 4.3-4.5 ms, the headless one from 1.9 to 1.7 ms, the order
# throughput unchanged (bench/console_load.py, 60 s runs)
LET_IN_EVERY_S = 0.0005


class LoopShare:
    """Long work on the event loop lets the loop in every every_s wall seconds: a key, a paint, a venue report."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._due = monotonic_s() + every_s

    def due(self) -> bool:
        return monotonic_s() >= self._due

    async def let_in(self) -> None:
        """Returns after what became due while the work ran (timers, sockets) has run: the loop queues those after
        the work's own next step, so a single yield would run another whole stretch of work first (session loop lag
        p99 under the console, 20 s of bench/console_load.py: 6.1 ms with one yield, 4.1 ms with two)."""
        await asyncio.sleep(0)  # the loop polls: due timers and ready sockets queue behind this coroutine
        await asyncio.sleep(0)  # and run before it goes on
        self._due = monotonic_s() + self.every_s


def utc_text(ns: int) -> str:
    """A nanosecond timestamp as 'YYYY-MM-DD HH:MM:SS' UTC, for people."""
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
