import ast
import asyncio
import time
from pathlib import Path

import pytest

from engine.clock import LiveClock, LoopShare, SimClock

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


async def test_letting_the_loop_in_runs_what_became_due_during_the_work():
    """A timer that fell due (or a socket that became readable) while a stretch of work ran gets its turn before
    the next stretch: the loop queues it behind the work's own next step, so one yield is not enough."""
    loop = asyncio.get_running_loop()
    ran: list[str] = []
    share = LoopShare(0.0)
    for stretch in range(3):
        loop.call_at(loop.time(), ran.append, f"due in stretch {stretch}")  # already due: the next poll queues it
        await share.let_in()
        assert ran == [f"due in stretch {s}" for s in range(stretch + 1)]
    assert share.due()


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


def test_risk_breakers_execution_and_brokers_import_without_a_cycle():
    """The rooms talk through narrow protocols: the package-level import graph among them has no cycle."""
    rooms = ("risk", "breakers", "execution", "brokers")
    edges: dict[str, set[str]] = {room: set() for room in rooms}
    for room in rooms:
        for path in (REPO / "engine" / room).rglob("*.py"):
            for name in imported_modules(path):
                parts = name.split(".")
                if parts[0] == "engine" and len(parts) > 1 and parts[1] in rooms and parts[1] != room:
                    edges[room].add(parts[1])
                assert name not in ("engine.core", "engine.session", "engine.runtime"), \
                    f"{path.relative_to(REPO)} reaches back into the engine that wires it ({name})"

    def reaches(start: str, target: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(n == target or (n not in seen and reaches(n, target, seen | {n})) for n in edges[start])

    cycles = [room for room in rooms if reaches(room, room)]
    assert not cycles, f"import cycle through {cycles}: {edges}"
