"""The live behaviour score: `python -m engine.validation.live DB SESSION` validates what the session has
recorded so far and prints one JSON line.

A running session starts this as a separate process at its live interval, so the twin backtest runs
on another core and never holds the session's event loop (or its GIL); the session journals the line.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from engine.store.database import StoreError
from engine.validation.matching import WEIGHTS, Score
from engine.validation.validate import validate


def live_summary(path: Path, session_id: int) -> dict[str, Any]:
    """The score over the session so far, its components and how many differences are unexplained: the whole
    portfolio's, and under "strategies" each strategy's (as `validate` scores it per strategy)."""
    try:
        report = validate(path, session_id)
    except StoreError as exc:  # nothing to score yet (no decisions): say why, score none
        return {"score": None, "market_ts": None, "market_seq": 0, "note": str(exc)}
    unexplained = Counter(d.strategy for d in report.differences if not d.explained)
    strategies = {name: {**_scored(s), "unexplained": unexplained[name]} for name, s in report.per_strategy.items()}
    return {**_scored(report.score), "market_ts": report.until_ts, "market_seq": report.market_events,
            "differences": len(report.differences), "unexplained": sum(unexplained.values()), "passed": report.passed,
            "strategies": strategies}


def _scored(s: Score) -> dict[str, Any]:
    return {"score": s.score, "components": {name: getattr(s, name) for name in WEIGHTS},
            "paper_decisions": s.paper_decisions, "twin_decisions": s.twin_decisions}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m engine.validation.live DB SESSION_ID", file=sys.stderr)
        return 2
    print(json.dumps(live_summary(Path(argv[0]), int(argv[1]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
