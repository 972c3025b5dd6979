"""Strategies by name, as config.toml refers to them."""

from __future__ import annotations

from typing import Any, TypeVar

from engine.strategy.base import Strategy

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
    """The class registered as kind; the error lists the kinds there are."""
    _load_builtins()
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown strategy {kind!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def strategy_kinds() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def _load_builtins() -> None:
    from engine.strategy import builtins  # noqa: F401  (importing registers them)
