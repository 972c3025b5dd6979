"""`paperdesk run --no-ui`: the same paper session without Textual, printing status lines.

Must not import textual (a test checks sys.modules): it serves SSH sessions and services.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from engine.breakers.trading_state import PORTFOLIO, TradingState
from engine.config import AppConfig
from engine.session import PaperSession
from engine.store.database import StoreError
from engine.store.writer import label

if TYPE_CHECKING:
    from console.cli import StopSignals

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


@contextmanager
def stop_signals(signals: StopSignals | None, on_signal: Callable[[signal.Signals], None]) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP go to on_signal, on the running loop, until the block ends: through `signals` (the
    handlers main installed on its first line, which stay in place, so no signal ever meets a default handler),
    else (a caller's own loop, as in tests) through the loop's handlers."""
    loop = asyncio.get_running_loop()
    if signals is not None:
        signals.listen(lambda sig: loop.call_soon_threadsafe(on_signal, sig))
    else:
        for sig in SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        if signals is not None:
            signals.listen(None)
        else:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)


async def run_headless(config: AppConfig, duration: float | None, record_to: Path | None = None,
                       db: Path | None = None, new_session: bool = False, out: TextIO = sys.stdout,
                       signals: StopSignals | None = None) -> int:
    """Run until duration, SIGINT, SIGTERM or SIGHUP; the last line is the summary. Returns an exit code.

    Raises StoreError before trading if the database cannot be used or its session cannot be resumed, and
    StoppedBeforeStart if a signal (or a closed output) came before the session wrote anything.
    """
    session = PaperSession(config, record_to, db, new_session)
    stopped_by: list[str] = []
    noted_repeat = False

    def say(line: str) -> None:
        try:
            print(f"{_stamp()} {line}", file=out, flush=True)
        except BrokenPipeError:
            # whoever read our output is gone (`| head`, a dead logger): stop cleanly, as on SIGHUP
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            stopped_by.append("output-closed")
            session.stop("output closed")

    def on_signal(sig: signal.Signals) -> None:
        nonlocal noted_repeat
        if stopped_by:
            # the close under way must finish, or rows queued for the database would be lost
            if not noted_repeat:
                say(f"{sig.name}: already stopping, closing the database first; further signals are ignored")
                noted_repeat = True
            return
        stopped_by.append(sig.name)
        session.stop(sig.name)

    symbols = ",".join(i.symbol for i in config.instruments)
    strategies = ",".join(f"{s.name}({s.kind})" for s in config.strategies) or "none"
    venue = config.venue.kind if config.venue.exchange is None else f"{config.venue.exchange}({config.venue.mode})"
    say(f"start venue={venue} speed={config.venue.speed:g} symbols={symbols} "
        f"strategies={strategies} duration={duration if duration is not None else 'until-signal'}"
        + (f" record={record_to}" if record_to else "") + (f" db={db}" if db else ""))
    exit_code = 0
    with stop_signals(signals, on_signal):
        await session.open()  # a resumed session replays its saved market data here, before trading
        if session.recovered is not None:
            say(f"resumed session {session.session_id}: {session.recovered.summary()}")
            health = session.venue_health()
            if not health.simulated and health.reconciliation is not None:
                say(f"reconciled {health.name}: {health.reconciliation}")
            held = session.engine.guard.states.record(PORTFOLIO)
            if held.state is not TradingState.ACTIVE:  # a resume can come back restricted: say so before trading
                say(f"trading {held.state.value} ({held.source}): {held.cause}")
        elif session.session_id is not None:
            say(f"started session {session.session_id}")
        # state changes and operator commands as they happen, so a log tail shows why trading stopped
        session.engine.guard.listeners.append(lambda change: say(f"trading {change.line()}"))
        session.on_command = lambda line: say(line)
        try:
            snapshot = await session.run(duration, on_status=lambda s: say(f"status {s.status_line()}"))
        except StoreError as exc:
            say(f"error {exc}")
            snapshot, exit_code = session.snapshot(), 1
            stopped_by.append("store-error")
    for _, level, message in snapshot.events:
        if level == "ERROR":
            say(f"error {message}")
    reason = stopped_by[0] if stopped_by else "duration"
    writer = session.writer
    unsaved = writer.unsaved() if writer is not None else {}
    if not unsaved:
        say(f"summary stopped_by={reason} {snapshot.status_line()}")
        return exit_code
    # the engine's memory is not the database: say what was saved, what was not, and what lives only in memory
    fills_lost = unsaved.get("fill", 0)
    lost = ", ".join(f"{n} {label(op)}" for op, n in sorted(unsaved.items(), key=lambda item: -item[1]))
    say(f"summary stopped_by={reason} saved fills={max(snapshot.fills - fills_lost, 0)} of {snapshot.fills}; "
        f"NOT SAVED: {sum(unsaved.values())} rows ({lost}); in memory only: {snapshot.status_line()}")
    return 1  # rows were lost, however the session ended: a script must not read this run as a clean one
