"""Trading states, portfolio-wide and per strategy, as layers of restrictions with their causes.

Each scope (the portfolio, or a strategy) holds at most one restriction per source (the operator,
a breaker, market-data health). The scope's state is its most severe restriction; a strategy's
effective state is the more severe of its own and the portfolio's. Lifting one restriction leaves
the others in force, so a data-health REDUCING that clears does not undo an operator's HALTED.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.clock import utc_text

PORTFOLIO = "portfolio"
OPERATOR = "operator"
MARKET_DATA = "market_data"


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"                        # no new entries; exits managed; resting orders stay
    REDUCING = "REDUCING"                    # only exposure-reducing orders; resting entries canceled
    COOLDOWN = "COOLDOWN"                    # like HALTED, until a time
    HALTED = "HALTED"                        # no new entries; resting entries canceled; exits managed
    EMERGENCY_STOPPED = "EMERGENCY_STOPPED"  # flattened; nothing trades until resume with a reason


SEVERITY = {state: rank for rank, state in enumerate(TradingState)}
# states in which an order resting to open or add to a position is canceled
CANCELS_ENTRIES = frozenset({TradingState.REDUCING, TradingState.COOLDOWN, TradingState.HALTED,
                             TradingState.EMERGENCY_STOPPED})


@dataclass(frozen=True, slots=True)
class Restriction:
    state: TradingState
    source: str        # "operator", a breaker's name, "market_data"
    cause: str
    since_ns: int
    until_ns: int | None = None


@dataclass(frozen=True, slots=True)
class StateChange:
    """A restriction imposed or lifted, with the scope's state before and after."""

    scope: str
    previous: TradingState
    state: TradingState
    source: str
    cause: str
    ts: int
    until_ns: int | None = None

    def line(self) -> str:
        until = "" if self.until_ns is None else f" until {utc_text(self.until_ns)} (market time)"
        moved = f"{self.previous} -> {self.state}" if self.previous is not self.state else f"stays {self.state}"
        return f"{self.scope}: {moved} ({self.source}: {self.cause}){until}"


ACTIVE_RECORD = Restriction(TradingState.ACTIVE, "", "", 0)
_NONE: dict[str, Restriction] = {}


class TradingStates:
    """Every scope's restrictions; changes come back as StateChange values for the journal and the log."""

    def __init__(self) -> None:
        self._by_scope: dict[str, dict[str, Restriction]] = {}
        self.next_expiry: int | None = None

    def restrict(self, scope: str, restriction: Restriction) -> StateChange | None:
        """Impose (or replace) the restriction from restriction.source; None if it was already exactly in force."""
        layers = self._by_scope.setdefault(scope, {})
        old = layers.get(restriction.source)
        if old is not None and (old.state, old.cause, old.until_ns) == (restriction.state, restriction.cause,
                                                                       restriction.until_ns):
            return None
        before = self.state(scope)
        layers[restriction.source] = restriction
        self._update_expiry()
        return StateChange(scope, before, self.state(scope), restriction.source, restriction.cause,
                           restriction.since_ns, restriction.until_ns)

    def lift(self, scope: str, source: str, cause: str, ts: int) -> StateChange | None:
        """Remove source's restriction on scope; None if it had none."""
        layers = self._by_scope.get(scope)
        if not layers or source not in layers:
            return None
        before = self.state(scope)
        del layers[source]
        self._update_expiry()
        return StateChange(scope, before, self.state(scope), source, cause, ts)

    def clear(self, scope: str, cause: str, ts: int) -> list[StateChange]:
        """The operator's resume: lift every restriction on scope but market-data health, which clears itself."""
        sources = [s for s in self._by_scope.get(scope, {}) if s != MARKET_DATA]
        return [c for s in sources if (c := self.lift(scope, s, cause, ts)) is not None]

    def expire(self, ts: int) -> list[StateChange]:
        """Lift every timed restriction whose time has come."""
        if self.next_expiry is None or ts < self.next_expiry:
            return []
        changes = []
        for scope, layers in list(self._by_scope.items()):
            for source, r in list(layers.items()):
                if r.until_ns is not None and r.until_ns <= ts:
                    change = self.lift(scope, source, f"{r.state} from {source} expired", ts)
                    if change is not None:
                        changes.append(change)
        return changes

    def record(self, scope: str) -> Restriction:
        """The scope's own most severe restriction (ACTIVE_RECORD when it has none)."""
        layers = self._by_scope.get(scope)
        if not layers:
            return ACTIVE_RECORD
        return max(layers.values(), key=lambda r: (SEVERITY[r.state], r.until_ns or 0))

    def state(self, scope: str) -> TradingState:
        return self.record(scope).state

    def effective(self, strategy: str) -> Restriction:
        """What binds a strategy: the more severe of the portfolio's state and its own."""
        own, portfolio = self.record(strategy), self.record(PORTFOLIO)
        return own if SEVERITY[own.state] > SEVERITY[portfolio.state] else portfolio

    def restricted(self) -> list[tuple[str, Restriction]]:
        """(scope, its own most severe restriction) for every scope not ACTIVE, in the order they were first seen."""
        return [(scope, self.record(scope)) for scope, layers in self._by_scope.items() if layers]

    def sources(self, scope: str) -> dict[str, Restriction]:
        """The scope's restrictions by source (read-only; a dict so `name in sources` is one lookup)."""
        return self._by_scope.get(scope) or _NONE

    def _update_expiry(self) -> None:
        times = [r.until_ns for layers in self._by_scope.values() for r in layers.values() if r.until_ns is not None]
        self.next_expiry = min(times) if times else None
