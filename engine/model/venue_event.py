"""What a venue reports about our orders, queued by the venue and applied by the engine in order.

Every venue (the simulated one or a real exchange) speaks in these. The engine drains the queue
after each market event and each command, so callbacks run in the same order at any latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.model.fill import Fill


class VenueEventKind(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    TRIGGERED = "TRIGGERED"             # a stop's trigger price traded: it now works as a market or limit order
    FILLED = "FILLED"                   # a fill, whole or partial: the order's remaining quantity says which
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"
    CANCEL_REJECTED = "CANCEL_REJECTED"  # the venue would not cancel: the order works on


class CancelAck(StrEnum):
    """A venue's immediate answer to a cancel request."""

    DONE = "DONE"        # canceled now (a simulated venue): no event follows
    PENDING = "PENDING"  # asked: CANCELED or CANCEL_REJECTED follows as a venue event
    UNKNOWN = "UNKNOWN"  # the venue no longer has the order (filled, closed, or being matched right now)


@dataclass(slots=True)
class VenueEvent:
    """One report about the order with our client_id, stamped in market time."""

    kind: VenueEventKind
    client_id: str
    ts: int
    reason: str = ""
    fill: Fill | None = None
    latency_ns: int = 0  # with ACCEPTED: how long the order took to reach the venue
