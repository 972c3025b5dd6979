"""Paper sessions for validation tests, stepped by hand: deterministic, and minutes of market time in a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config import AppConfig
from engine.runtime import PaperSession, ideal_venue
from tests.conftest import make_config

STEP_NS = 3_000_000_000  # one market update every 3 s of market time, as the default venue at speed 120


# breakers an injected fault trips in turn (a lagging venue pauses at its first order, late fills lose trades in
# a row): off, so each difference shows the fault itself rather than the breaker it tripped
FAULT_BREAKERS_OFF = {"order_latency_seconds": None, "consecutive_losses": None, "daily_loss": None, "drawdown": None}


def venue_config(**venue: Any) -> AppConfig:
    """The test config on the parity venue, with venue settings changed and FAULT_BREAKERS_OFF."""
    config = ideal_venue(make_config(breakers=FAULT_BREAKERS_OFF))
    return config.model_copy(update={"venue": config.venue.model_copy(update=venue)})


async def stepped_session(db: Path, config: AppConfig, steps: int = 1500, close: bool = True,
                          step_ns: int = STEP_NS) -> PaperSession:
    """A session on db that takes `steps` market updates step_ns apart and (unless close=False) stops."""
    session = PaperSession(config, db_path=db)
    await session.open()
    start = session.clock.now_ns()
    for i in range(1, steps + 1):
        ts = start + i * step_ns
        session.step(ts)
        if i % 100 == 0:
            session.engine.mark_equity(ts)
            session.journal.mark(session.engine, ts)
            await session.writer.make_room()
    if close:
        await session.close()
    return session
