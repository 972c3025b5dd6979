"""The tasks around a paper session's loop: the operator-command poller, the live behaviour score and
the market-data recorder. Each does its disk or process work off the event loop."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from engine.data.recording import append_events, write_header
from engine.model.event_log import EventLevel
from engine.model.market import MarketEvent
from engine.store.commands import POLL_SECONDS, Command, CommandInbox

Log = Callable[[EventLevel, str], None]
RESTART_DELAY_S = 5.0


async def poll_commands(inbox: CommandInbox, into: list[Command], log: Log) -> None:
    """Fetch queued commands every POLL_SECONDS in a worker thread into `into`; the session loop applies them."""
    try:
        while True:
            try:
                into.extend(await asyncio.to_thread(inbox.fetch))
            except Exception as exc:  # a busy or briefly unreadable database: say so and poll again
                log(EventLevel.WARN, f"cannot read operator commands: {type(exc).__name__}: {exc}")
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await asyncio.to_thread(inbox.close)


async def live_score(db_path: Path, session_id: int, log: Log) -> dict[str, Any] | None:
    """The behaviour score over what the session has committed, computed by `engine.validation.live` in a child
    process (it replays the session, which must not stall the loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.validation.live", str(db_path), str(session_id),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent)
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        log(EventLevel.WARN, f"live behaviour score failed (exit {proc.returncode}): {last[0]}")
        return None
    summary: dict[str, Any] = json.loads(out)
    return summary


async def score_every(every: float, score: Callable[[], Any], log: Log) -> None:
    """Run `score` every `every` wall seconds. A failure is logged and the task goes on after a pause: a
    broken scorer must be seen, and must not leave the session without scores for good."""
    while True:
        await asyncio.sleep(every)
        try:
            await score()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log(EventLevel.ERROR, f"live behaviour score task failed ({type(exc).__name__}: {exc}); "
                                  f"restarting it in {RESTART_DELAY_S:g} s")
            await asyncio.sleep(RESTART_DELAY_S)


class Recorder:
    """Market events the engine saw, appended to a .jsonl recording at most once a second."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events = 0
        self._out: TextIO | None = None

    async def open(self) -> None:
        def start() -> TextIO:
            out = open(self.path, "w", encoding="utf-8")  # closed by close()
            write_header(out)
            return out

        self._out = await asyncio.to_thread(start)

    async def flush(self, events: list[MarketEvent]) -> None:
        self.events += len(events)
        out = self._out
        if not events or out is None:
            return

        def write() -> None:
            append_events(out, events)
            out.flush()

        await asyncio.to_thread(write)

    async def close(self) -> None:
        if self._out is not None:
            await asyncio.to_thread(self._out.close)
            self._out = None
