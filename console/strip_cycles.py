"""Painted lines freed as soon as they are replaced, not left for the garbage collector.

Textual's compositor divides every painted line at the screen's cuts, and Strip.divide keeps what it returns in the
strip's own cache; for a line that needs no cut (nearly every line) that is a list holding the strip itself. So each
line painted became a reference cycle, with its segments and caches, that only the cycle collector frees: ~4,700
objects a second at ten frames a second, ~50,000 freed by each full collection, a 60-110 ms pause of the console and
of the session's loop alike (bench/console_load.py). Textual is pinned (pyproject.toml);
tests/console/test_strip_cycles.py fails if a new one paints cycles again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.strip import Strip

_DIVIDE = Strip.divide  # Textual's own, which still divides (and caches) every line that does need a cut


def _divide(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
    kept = [cut for cut in cuts if cut <= self.cell_length]
    if kept == [self.cell_length]:
        return [self]  # the whole line: not cached, the cache would hold the strip itself
    return _DIVIDE(self, kept)


def install() -> None:
    """Strip.divide without the cycle, for every app in the process (installing again changes nothing)."""
    Strip.divide = _divide  # type: ignore[method-assign]
