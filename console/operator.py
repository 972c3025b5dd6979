"""`paperdesk halt | pause | resume | emergency-stop | phase`: commands to a running session from another shell.

The command is queued in the database; the running engine applies it within a second and records
the result, which this prints. With no engine running it stays queued and applies when the session
resumes. What cannot succeed is refused before it is queued: a strategy or risk phase the session's stored
config does not define (exit 2), halt or pause during an emergency stop, or resume out of one without a reason
(exit 1). Exit 0 when applied (or queued, or sent with --wait 0), 1 when the engine refused it or did not answer
in time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from engine.clock import utc_text
from engine.store.commands import CommandRefused, command_result, queue_command
from engine.store.database import writer_running


def send_command(db: Path, command: str, args: dict[str, Any], reason: str, wait_s: float,
                 out: TextIO = sys.stdout) -> int:
    started = time.monotonic()
    try:
        command_id, session_id = queue_command(db, command, args, reason, check=True)
    except CommandRefused as exc:
        print(f"paperdesk: {command} REFUSED: {exc}", file=sys.stderr)
        return 1
    what = command + (f" {args['strategy']}" if args.get("strategy") else "")
    try:
        return _answer(db, session_id, command_id, what, started, wait_s, out)
    except BaseException as exc:
        if not isinstance(exc, Exception):  # a signal while waiting: the command stays queued and applies all the same
            print(f"session {session_id}: {what} is queued (command {command_id}) and applies when the engine next "
                  f"polls; stopped waiting for its answer. Check `paperdesk status --db {db}`", file=out)
        raise


def _answer(db: Path, session_id: int, command_id: int, what: str, started: float, wait_s: float,
            out: TextIO) -> int:
    """Print what became of a queued command, once the engine answered or wait_s ran out; the exit code."""
    if not writer_running(db):
        print(f"session {session_id} is not running: {what} is queued (command {command_id}) and applies when it "
              f"resumes (paperdesk run --db {db})", file=out)
        return 0
    if wait_s == 0:  # a script that only queues: the result is in `status` and the session's output
        print(f"session {session_id}: {what} is queued (command {command_id}); not waiting for the answer "
              f"(--wait 0). Check `paperdesk status --db {db}`", file=out)
        return 0
    deadline = started + wait_s
    while True:
        result = command_result(db, command_id)
        if result.handled:
            took = time.monotonic() - started
            at = utc_text(result.market_ts or 0)
            verdict = "applied" if result.ok else "REFUSED"
            print(f"session {session_id}: {what} {verdict} in {took:.2f} s (market time {at}): {result.result}",
                  file=out)
            return 0 if result.ok else 1
        if time.monotonic() >= deadline:
            print(f"session {session_id}: {what} is queued (command {command_id}) but the engine has not applied it "
                  f"within {wait_s:g} s; it will when it next polls. Check `paperdesk status --db {db}`", file=out)
            return 1
        time.sleep(0.05)
