"""Operator commands (halt, pause, resume, emergency stop, risk phase, cancel, flatten): one typed set, applied in one
place.

Commands come from the console's keys or from another shell through the database; either way they
are applied between market events, in market time, so a replay of the session applies them again
at the same point. An operator command may only tighten a trading state; resume is the only way
back, and leaving an emergency stop needs a reason. Cancel and flatten act on orders and positions, not on the
trading state: a strategy still running may trade the symbol again (pause it first to keep it flat).
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
    CANCEL = "cancel"    # args: order (a client id), or strategy (every open order of it)
    FLATTEN = "flatten"  # args: symbol; every strategy's position in it closed at market, its orders canceled


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
    if kind is OperatorCommand.CANCEL:
        return _cancel(guard, args.get("order"), strategy, reason or "canceled by the operator")
    if kind is OperatorCommand.FLATTEN:
        return _flatten(guard, args.get("symbol"), reason or "flattened by the operator")
    phase = args.get("phase")
    if strategy is None or phase not in risk.phase_rules:
        return False, (f"phase needs --strategy and a defined phase "
                       f"({', '.join(map(str, sorted(risk.phase_rules))) or 'none defined'})")
    old = risk.set_phase(strategy, phase)
    state = guard.states.state(strategy)
    guard.note(StateChange(strategy, state, state, "phase", f"risk phase {old} -> {phase}: {reason or 'operator'}",
                           ts))
    return True, f"{strategy}: risk phase {old} -> {phase}"


def _cancel(guard: TradingGuard, order_id: object, strategy: str | None, reason: str) -> tuple[bool, str]:
    open_orders = guard.orders.open_orders()
    if order_id is not None:
        order = next((o for o in open_orders if o.client_id == order_id), None)
        if order is None:
            return False, f"order {order_id} is not open (filled, canceled or unknown): nothing to cancel"
        guard.orders.cancel(order.client_id, reason)
        what = f"{order.strategy} {order.side.name} {order.qty:g} {order.symbol}"
        return True, f"cancel of {order.client_id} ({what}) sent"
    if strategy is None:
        return False, "cancel needs an order id or a strategy"
    mine = [o.client_id for o in open_orders if o.strategy == strategy]
    for client_id in mine:
        guard.orders.cancel(client_id, reason)
    return True, f"{strategy}: cancel of {len(mine)} open order(s) sent" if mine else f"{strategy} has no open order"


def _flatten(guard: TradingGuard, symbol: object, reason: str) -> tuple[bool, str]:
    if not isinstance(symbol, str) or symbol not in guard.instruments:
        return False, f"flatten needs a symbol the session trades ({', '.join(guard.instruments)}), not {symbol!r}"
    # the close-out's origin is read from the start of its reason: an operator's words must not pass for a breaker's
    closing = guard.flatten((symbol,), f"operator flatten: {reason}")
    if not closing:
        return True, f"{symbol}: no position to close (its open orders canceled)"
    return True, f"{symbol}: closing {closing} position(s) at market"
