"""Strategies by the `kind` config.toml gives them: a name, a file path or a module path (engine/strategy/loader.py).

Names come from the `paperdesk.strategies` entry points of installed packages (the built-ins are entries of this
one) and from register(), which tests and embedding code use to add a class in-process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from engine.strategy.base import Strategy
from engine.strategy.loader import entry_point_names, load_strategy

S = TypeVar("S", bound=Strategy[Any])

_REGISTRY: dict[str, type[Strategy[Any]]] = {}


def register(cls: type[S]) -> type[S]:
    """Class decorator: make cls available under cls.kind."""
    if not cls.kind:
        raise ValueError(f"{cls.__name__} has no kind")
    if cls.kind in _REGISTRY and _REGISTRY[cls.kind] is not cls:
        raise ValueError(f"strategy kind {cls.kind!r} is already registered by {_REGISTRY[cls.kind].__name__}")
    _REGISTRY[cls.kind] = cls
    return cls


def strategy_class(kind: str) -> type[Strategy[Any]]:
    """The class kind names; a StrategyLoadError (a KeyError) says why there is none, listing the known names."""
    return load_strategy(kind, _registered)


def strategy_kinds() -> list[str]:
    """Every strategy name: installed entry points and classes registered in this process."""
    return sorted(set(_registered()) | set(entry_point_names()))


def _registered() -> Mapping[str, type[Strategy[Any]]]:
    # imported here, not at the top: the built-ins import this module to register themselves
    from engine.strategy import builtins  # noqa: F401  (importing registers them, whatever the package metadata)

    return _REGISTRY
