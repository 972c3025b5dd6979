"""Levels of the operator-facing event log (console and headless lines)."""

from __future__ import annotations

from enum import StrEnum


class EventLevel(StrEnum):
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"
