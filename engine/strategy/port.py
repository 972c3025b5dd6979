"""The one object a strategy holds of the engine: the documented API, bound to that strategy, and nothing else.

Its methods are closures over the engine's, so the port has no attribute that leads to the engine, the account,
the order manager or another strategy; whatever a strategy names on it that the API does not have is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.model.decision import Decision
from engine.strategy.base import OpenOrder

_API = ("now_ns", "strategy_position", "equity", "trading_state", "open_orders", "cancel", "decide",
        "intend_target", "intend_order")


class StrategyPort:
    """Implements StrategyContext for one strategy; a call made in another strategy's name acts for this one."""

    __slots__ = _API

    now_ns: Callable[[], int]
    strategy_position: Callable[[str, str], float]
    equity: Callable[[], float]
    trading_state: Callable[[str], str]
    open_orders: Callable[[str], list[OpenOrder]]
    cancel: Callable[[str, str, str], bool]
    decide: Callable[[Any, Decision], None]
    intend_target: Callable[..., None]
    intend_order: Callable[..., None]

    def __init__(self, **methods: Callable[..., Any]) -> None:
        if sorted(methods) != sorted(_API):
            raise TypeError(f"a strategy port has exactly {', '.join(_API)}")
        for name, method in methods.items():
            object.__setattr__(self, name, method)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a strategy's context is read-only ({name})")

    def __repr__(self) -> str:
        return f"StrategyPort({', '.join(_API)})"
