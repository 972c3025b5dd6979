"""A desk stopped at one moment of a seeded, stepped session: the console's screenshots are the same on every run.

The session runs on the simulated venue with its seed, stepped by hand on market time that starts at a fixed
instant (its wall clock is frozen there), and saves to a real database, so the screens that read it (details, the
journal, the behaviour score) have the session's own rows to show. FrozenDesk hands out the one snapshot taken
before the session closed, still trading; FrozenApp is the real console whose wall clock reads a fixed time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from console.app import PaperdeskApp
from engine import session as session_module
from engine.clock import LiveClock
from engine.config import AppConfig, parse_config
from engine.session import PaperSession
from engine.snapshot import EngineSnapshot
from tests.conftest import BASE_CONFIG
from tests.engine.risk_helpers import SEC, T0
from tests.store.helpers import STEP_NS

STEPS = 1200             # an hour of market time, 3 s a step
MARK_EVERY = 20         # steps between equity marks: a minute of market time
WALL_NS = T0 + 40 * SEC  # what the console's wall clock reads: 40 wall s after the start, the market an hour on


def frozen_config() -> AppConfig:
    """The test config at the default venue's speed, with brackets on every entry (a position keeps a stop and a
    target working)."""
    data = copy.deepcopy(BASE_CONFIG)
    for strategy in data["strategies"]:
        strategy["exits"] = {"stop_loss_pct": 0.01, "take_profit_pct": 0.02}
    data["venue"]["speed"] = 120.0
    return parse_config(data, "frozen-desk-config")


class StoppedWallClock(LiveClock):
    """A wall clock that never moves from T0: market time starts there, and no data ever looks old."""

    def __init__(self, speed: float = 1.0, start_ns: int | None = None) -> None:
        super().__init__(speed, T0)

    def now_ns(self) -> int:
        return T0


@dataclass(frozen=True)
class FrozenDesk:
    """The Desk protocol over one snapshot; commands are refused (nothing here trades)."""

    db_path: Path | None
    session_id: int | None
    picture: EngineSnapshot
    attached: bool = False
    running: bool = True

    def snapshot(self) -> EngineSnapshot:
        return self.picture

    def link(self) -> str | None:
        return None

    def confirm_first(self, command: str) -> str | None:
        return None

    def command(self, command: str, args: dict[str, Any], reason: str, source: str) -> tuple[bool, str]:
        return False, f"{command}: a frozen desk takes no command"

    def stop(self, reason: str) -> None:
        """Nothing runs."""


class FrozenApp(PaperdeskApp):
    """The console with its wall clock stopped at WALL_NS."""

    def wall_now(self) -> int:
        return WALL_NS


async def frozen_desk(db: Path) -> FrozenDesk:
    """Run the seeded session into db (STEPS market updates, a halt and a resume on the way, its behaviour scored),
    and freeze it just before it closes."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(session_module, "LiveClock", StoppedWallClock)
        session = PaperSession(frozen_config(), db_path=db)
    await session.open()
    try:
        await _step(session, STEPS // 2)
        session.operator_command("halt", {}, "snapshot desk: a halt on the chart", "console test")
        await _step(session, STEPS // 8)
        session.operator_command("resume", {}, "snapshot desk: trading again", "console test")
        await _step(session, STEPS - STEPS // 2 - STEPS // 8)
        assert session.writer is not None and await session.writer.flush()
        await session._score()
        assert await session.writer.flush()
        picture = session.snapshot()
    finally:
        await session.close()
    return FrozenDesk(db, session.session_id, picture)


async def _step(session: PaperSession, steps: int) -> None:
    """steps market updates STEP_NS apart, the equity marked (and saved) every minute of market time."""
    assert session.journal is not None and session.writer is not None
    start = session.clock.now_ns()
    for i in range(1, steps + 1):
        ts = start + i * STEP_NS
        session.step(ts)
        if i % MARK_EVERY == 0:
            session.engine.mark_equity(ts)
            session.journal.mark(session.engine, ts)
            await session.writer.make_room()
