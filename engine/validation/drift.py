"""Drift: whether the twin backtest runs the strategy code and config the paper session ran.

A session stores its config's text with its sha256 (sessions.config_json, config_hash) and, per strategy,
the parameters it ran with and a fingerprint of its source and parameters (strategies.params, fingerprint).
The twin is built from the stored config by build_strategies, with the strategy code installed now. When
either differs, the twin is not the session's twin: a difference between them may come from the change,
so none can be put down to the venue (latency, slippage, a gap).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import AppConfig
from engine.runtime import build_strategies
from engine.store.database import connect_readonly
from engine.store.read import unreadable
from engine.store.sessions import config_hash
from engine.strategy.base import Strategy
from engine.strategy.loader import strategy_fingerprint
from engine.validation.records import ValidationInputError


class DriftError(ValidationInputError):
    """The twin would not run what the session ran; the message names each change."""


@dataclass(frozen=True, slots=True)
class Drift:
    changes: list[str] = field(default_factory=list)  # one line per change: which strategy, which parameter
    unchecked: list[str] = field(default_factory=list)  # what the session recorded too little to check


@dataclass(frozen=True, slots=True)
class _Recorded:
    params: dict[str, Any]
    fingerprint: str | None  # None: recorded by a paperdesk from before fingerprints


def session_drift(path: Path, session_id: int, config: AppConfig) -> Drift:
    """What changed between the session as it ran and the twin built now from its stored config."""
    conn = connect_readonly(path)  # load_session has checked the file already
    try:
        text, digest = conn.execute("SELECT config_json, config_hash FROM sessions WHERE id = ?",
                                    (session_id,)).fetchone()
        columns = {row[1] for row in conn.execute("PRAGMA table_info(strategies)")}
        fingerprint = "fingerprint" if "fingerprint" in columns else "NULL"  # schema 5 added it
        recorded = {name: _Recorded(json.loads(params), digest_) for name, params, digest_ in conn.execute(
            f"SELECT name, params, {fingerprint} FROM strategies WHERE session_id = ?", (session_id,))}
    except sqlite3.Error as exc:
        raise unreadable(path, exc) from None
    finally:
        conn.close()
    changes, unchecked = [], []
    if config_hash(text) != digest:
        changes.append(f"session {session_id}'s stored config was edited after the session started: its text no "
                       f"longer has the sha256 {digest[:12]} recorded with it")
    twins = build_strategies(config)
    for strategy in twins:
        ran = recorded.get(strategy.name)
        if ran is None:
            changes.append(f"strategy {strategy.name}: the session recorded no strategy of that name")
            continue
        changes += _changes(strategy, ran)
        if ran.fingerprint is None:
            unchecked.append(f"strategy {strategy.name}: the session recorded no fingerprint of its code "
                             "(an older paperdesk), so a change to its code cannot be seen")
    changes += [f"strategy {name}: the session ran it, the stored config has no such strategy"
                for name in sorted(set(recorded) - {s.name for s in twins})]
    return Drift(changes, unchecked)


def _changes(twin: Strategy, ran: _Recorded) -> list[str]:
    now = twin.params.model_dump(mode="json")
    out = [f"strategy {twin.name}: parameter {key} was {ran.params.get(key, '(absent)')!r} in the session, "
           f"{now.get(key, '(absent)')!r} in the twin" for key in sorted(set(ran.params) | set(now))
           if ran.params.get(key) != now.get(key)]
    if ran.fingerprint is None:
        return out
    try:  # the code as it is now with the session's own parameters: a differing fingerprint is then the code
        as_ran = type(twin)(twin.name, twin.symbols, twin.timeframe, ran.params, timeframes=twin.timeframes)
    except ValueError:  # pydantic's ValidationError included: today's code no longer takes the session's parameters
        return out + [f"strategy {twin.name}: its code ({type(twin).__module__}.{type(twin).__qualname__}) no longer "
                      "accepts the parameters the session ran with"]
    now_fingerprint = strategy_fingerprint(as_ran)
    if now_fingerprint != ran.fingerprint:
        out.append(f"strategy {twin.name}: its code ({type(twin).__module__}.{type(twin).__qualname__}) changed since "
                   f"the session ran (fingerprint {ran.fingerprint[:12]} then, {now_fingerprint[:12]} now)")
    return out


def refusal(session_id: int, drift: Drift) -> str:
    """The message validate refuses a drifted session with."""
    lines = "".join(f"\n  {change}" for change in drift.changes)
    return (f"session {session_id}: its twin backtest would not run what the session ran:{lines}\n"
            "Validate with the strategy code and config the session ran, or pass --allow-drift to validate anyway "
            "with every difference counted unexplained")
