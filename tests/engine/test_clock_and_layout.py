import ast
import time
from pathlib import Path

import pytest

from engine.clock import LiveClock, SimClock

REPO = Path(__file__).resolve().parents[2]


def test_sim_clock_only_moves_forward():
    clock = SimClock(10)
    clock.advance_to(10)
    clock.advance_to(25)
    assert clock.now_ns() == 25
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(24)


def test_live_clock_runs_at_its_speed():
    clock = LiveClock(speed=100.0)
    # bracket each market reading with wall readings, so a scheduling pause cannot fail the test
    w0 = time.perf_counter_ns()
    m0 = clock.now_ns()
    w1 = time.perf_counter_ns()
    time.sleep(0.05)
    w2 = time.perf_counter_ns()
    m1 = clock.now_ns()
    w3 = time.perf_counter_ns()
    assert 100 * (w2 - w1) - 100 <= m1 - m0 <= 100 * (w3 - w0) + 100
    assert abs(LiveClock().now_ns() - time.time_ns()) < 50_000_000
    with pytest.raises(ValueError):
        LiveClock(speed=0)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_engine_never_imports_the_console_or_textual():
    for path in (REPO / "engine").rglob("*.py"):
        for name in imported_modules(path):
            assert name.split(".")[0] not in {"console", "textual", "textual_plotext", "plotext"}, (path, name)


def test_only_the_clock_reads_the_time():
    for path in (REPO / "engine").rglob("*.py"):
        if path.name == "clock.py":
            continue
        assert "time" not in {n.split(".")[0] for n in imported_modules(path)}, path
