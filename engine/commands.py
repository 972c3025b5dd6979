"""Operator commands (halt, pause, resume, emergency stop, risk phase): one typed set, applied in one place.

Commands come from the console's keys or from another shell through the database; either way they
are applied between market events, in market time, so a replay of the session applies them again
at the same point. An operator command may only tighten a trading state; resume is the only way
back, and leaving an emergency stop needs a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from engine.breakers.guard import TradingGuard
from engine.breakers.trading_state import PORTFOLIO, StateChange, TradingState
from engine.risk.manager import RiskManager

# not the operator's: the session saves the store's restriction (and its lift) as a command, so a replay, which never
# sees the store fail, restricts and lifts at the same point
STORE_COMMAND = "store"


class OperatorCommand(StrEnum):
    HALT = "halt"
    PAUSE = "pause"
    RESUME = "resume"
    EMERGENCY_STOP = "emergency-stop"
    PHASE = "phase"


def apply_command(guard: TradingGuard, risk: RiskManager, strategies: Mapping[str, object], command: str,
                  args: Mapping[str, Any], reason: str, ts: int) -> tuple[bool, str]:
    """Apply one command; (False, why) when it is refused. Deterministic in ts, for replay."""
    if command == STORE_COMMAND:
        cause = args.get("cause")
        guard.store_unwritable(cause, ts)
        return True, f"REDUCING: {cause}" if cause else "the database takes writes again"
    try:
        kind = OperatorCommand(command)
    except ValueError:
        return False, f"unknown command {command!r} (known: {', '.join(OperatorCommand)})"
    strategy = args.get("strategy")
    if strategy is not None and strategy not in strategies:
        return False, f"no strategy named {strategy!r} (strategies: {', '.join(strategies)})"
    scope = strategy or PORTFOLIO
    if kind is OperatorCommand.HALT or kind is OperatorCommand.PAUSE:
        state = TradingState.HALTED if kind is OperatorCommand.HALT else TradingState.PAUSED
        return guard.restrict_by_operator(scope, state, reason or f"operator {kind.value}", ts)
    if kind is OperatorCommand.RESUME:
        return guard.resume(scope, reason, ts)
    if kind is OperatorCommand.EMERGENCY_STOP:
        return True, guard.emergency_stop(reason, ts)
    phase = args.get("phase")
    if strategy is None or phase not in risk.phase_rules:
        return False, (f"phase needs --strategy and a defined phase "
                       f"({', '.join(map(str, sorted(risk.phase_rules))) or 'none defined'})")
    old = risk.set_phase(strategy, phase)
    state = guard.states.state(strategy)
    guard.note(StateChange(strategy, state, state, "phase", f"risk phase {old} -> {phase}: {reason or 'operator'}",
                           ts))
    return True, f"{strategy}: risk phase {old} -> {phase}"
