"""Printing validation, promotion and session reports for the command line."""

from __future__ import annotations

import json
from pathlib import Path

from engine.config import ValidationConfig


def print_validation(path: Path, session_id: int | None, strategy: str | None, as_json: bool,
                     thresholds: ValidationConfig | None) -> int:
    """Validate a session and print the report; exit 0 when every check passes, 1 when one fails."""
    from engine.validation.validate import validate

    report = validate(path, session_id, strategy, thresholds)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.passed else 1
