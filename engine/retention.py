"""What a saved paper session keeps in memory: the newest part of its history. The database holds all of it.

A session that kept every order, decision, fill and equity mark would grow for as long as it trades (a 14-day trial,
or 250 orders a second under load), and every full garbage collection would walk all of it, pausing the loop for
longer the longer the session ran. A session with no database keeps everything: nothing else holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.core import Engine

FORGET_SECONDS = 1.0      # how often a session drops what is beyond its window (wall seconds)
KEEP_ENDED_ORDERS = 2_000  # ended orders kept however old: the order flow's recent lines still name their order
KEEP_DECISIONS = 5_000
KEEP_FILLS = 2_000         # the console shows the last 20
KEEP_MARKS = 5_000         # equity marks; the console's chart shows the last 600
# a venue holding real orders may still report on one after it ended (a fill after a confirmed cancel, found when
# reconciling): an ended order stays this long; a simulated venue fills in this process, never after the end
LATE_REPORT_NS = 15 * 60 * 1_000_000_000


@dataclass(slots=True)
class Forgotten:
    """How much of each history the engine no longer holds: its counts are these plus what it holds."""

    orders: int = 0
    decisions: int = 0
    fills: int = 0


class OrderEvents(Protocol):
    """The journal's numbering of each order's events, which a forgotten order no longer needs."""

    def forget_orders(self, client_ids: list[str]) -> None: ...


def forget_history(engine: Engine, journal: OrderEvents) -> None:
    """Drop what the engine holds beyond its window; recovery replays the saved session, so a resume has it all."""
    grace = 0 if engine.broker.capabilities.simulated else LATE_REPORT_NS
    gone = engine.oms.forget_ended(KEEP_ENDED_ORDERS, engine.clock.now_ns() - grace)
    if gone:
        journal.forget_orders(gone)
    forgotten = engine.forgotten
    forgotten.orders += len(gone)
    forgotten.decisions += _drop_oldest(engine.decisions, KEEP_DECISIONS)
    forgotten.fills += _drop_oldest(engine.fills, KEEP_FILLS)
    _drop_oldest(engine.equity_curve, KEEP_MARKS)


def _drop_oldest(items: list[Any], keep: int) -> int:
    excess = len(items) - keep
    if excess <= 0:
        return 0
    del items[:excess]
    return excess
