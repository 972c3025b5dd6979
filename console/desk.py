"""What the console watches and commands: a desk.

A session running in this process, on the console's loop (LocalDesk: tests step it) or on a loop of
its own in a thread of its own (ThreadDesk: `paperdesk run`, so painting never delays trading), or one
another process runs on the same database (console/attach.py). The console only ever reads snapshots
from it and sends it commands; anything deeper (an order's history, a strategy's decisions, the
behaviour score's differences) it reads from the desk's database, off the event loop.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Protocol

from engine.session import PaperSession
from engine.session_thread import SessionNotAnswering, SessionThread
from engine.snapshot import EngineSnapshot


class Desk(Protocol):
    @property
    def attached(self) -> bool:
        """True when another process runs the session (the header says ATTACHED)."""
        ...

    @property
    def running(self) -> bool:
        """Whether a process runs the session now (an attached desk: as of its last poll)."""
        ...

    @property
    def db_path(self) -> Path | None: ...

    @property
    def session_id(self) -> int | None: ...

    def snapshot(self) -> EngineSnapshot:
        """The latest picture; cheap, called several times a second on the event loop."""
        ...

    def link(self) -> str | None:
        """For the header: None for a session in this process; else ATTACHED and how fresh the data is, or that no
        session runs on the database (read-only)."""
        ...

    def confirm_first(self, command: str) -> str | None:
        """A question to put to the operator before sending command (None: send it at once)."""
        ...

    def command(self, command: str, args: dict[str, Any], reason: str, source: str) -> tuple[bool, str]:
        """Apply (or queue) an operator command (engine/commands.py); (ok, what happened) for a toast."""
        ...

    def stop(self, reason: str) -> None:
        """The console is quitting: a local session stops; an attached one keeps trading."""
        ...


class LocalDesk:
    """The session this process runs."""

    attached = False

    def __init__(self, session: PaperSession) -> None:
        self.session = session

    @property
    def running(self) -> bool:
        return True  # this process runs it for as long as the console is up

    @property
    def db_path(self) -> Path | None:
        return self.session.db_path if self.session.session_id is not None else None

    @property
    def session_id(self) -> int | None:
        return self.session.session_id

    def snapshot(self) -> EngineSnapshot:
        return self.session.snapshot()

    def link(self) -> str | None:
        return None

    def confirm_first(self, command: str) -> str | None:
        return None

    def command(self, command: str, args: dict[str, Any], reason: str, source: str) -> tuple[bool, str]:
        return self.session.operator_command(command, args, reason, source)

    def stop(self, reason: str) -> None:
        self.session.stop(reason)


class ThreadDesk(LocalDesk):
    """The session this process runs on a loop of its own (engine/session_thread.py): the console reads what that
    loop publishes, and its commands run there between two market events."""

    def __init__(self, runner: SessionThread) -> None:
        super().__init__(runner.session)
        self.runner = runner

    def snapshot(self) -> EngineSnapshot:
        return self.runner.snapshot()

    def command(self, command: str, args: dict[str, Any], reason: str, source: str) -> tuple[bool, str]:
        try:
            return self.runner.call(partial(self.session.operator_command, command, args, reason, source))
        except SessionNotAnswering as late:
            return False, f"{command}: {late}"

    def stop(self, reason: str) -> None:
        self.runner.stop(reason)
