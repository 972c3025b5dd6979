"""Read-only pictures of the engine for the operator (console and status lines); never fed back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.core import Engine
from engine.data.feed import FeedHealth
from engine.model.fill import Fill


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    qty: float
    avg_price: float
    mark: float
    unrealised: float
    realised: float


@dataclass(frozen=True, slots=True)
class StrategyView:
    name: str
    kind: str
    status: str
    error: str


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    ts: int
    equity: float
    cash: float
    starting_cash: float
    realised: float
    unrealised: float
    fees: float
    positions: tuple[PositionView, ...]
    recent_fills: tuple[Fill, ...]
    equity_series: tuple[float, ...]
    strategies: tuple[StrategyView, ...]
    orders: int
    open_orders: int
    fills: int
    decisions: int
    events: tuple[tuple[int, str, str], ...]
    session_id: int | None = None
    restarts: int = 0
    store_backlog: int = 0
    store_waits: int = 0
    store_committed: int = 0
    store_error: str = ""
    behaviour_score: float | None = None      # the latest live score (None until one is computed)
    behaviour_unexplained: int | None = None  # its differences with no recorded cause
    risk: dict[str, Any] = field(default_factory=dict)  # Engine.risk_view(): states, gauges, phases
    feed: FeedHealth | None = None  # what the session's feed says about itself

    @property
    def trading_state(self) -> str:
        return self.risk.get("state", "ACTIVE")

    def status_line(self) -> str:
        """One line for logs and the headless mode."""
        pnl = self.equity - self.starting_cash
        held = " ".join(f"{p.symbol}:{p.qty:+g}" for p in self.positions if p.qty) or "flat"
        failed = [s.name for s in self.strategies if s.status != "RUNNING"]
        text = (f"equity={self.equity:.2f} pnl={pnl:+.2f} cash={self.cash:.2f} fees={self.fees:.2f} "
                f"orders={self.orders} open={self.open_orders} fills={self.fills} decisions={self.decisions} "
                f"positions={held}")
        if failed:
            text += f" failed={','.join(failed)}"
        text += f" trading={self.trading_state}"
        for scope in self.risk.get("scopes", ()):
            if scope["scope"] != "portfolio":
                text += f" {scope['scope']}={scope['state']}"
        warn = [f"{g['breaker']}:{g['usage']:.0%}" for g in self.risk.get("gauges", ()) if g["warn"]]
        if warn:
            text += f" breaker_warn={','.join(warn)}"
        if self.session_id is not None:
            text += (f" session={self.session_id} restarts={self.restarts} saved_rows={self.store_committed} "
                     f"backlog={self.store_backlog} backpressure_waits={self.store_waits}")
            if self.store_error:
                text += f" store_error={self.store_error!r}"
            if self.behaviour_score is not None:
                text += f" behaviour={self.behaviour_score:.2f} unexplained={self.behaviour_unexplained}"
        return text


def take_snapshot(engine: Engine, n_fills: int = 20, n_equity: int = 600, n_events: int = 50) -> EngineSnapshot:
    account = engine.account
    positions = tuple(
        PositionView(symbol, p.qty, p.avg_price, account.marks.get(symbol, p.avg_price),
                     p.unrealised(account.marks.get(symbol, p.avg_price)), p.realised_pnl)
        for symbol, p in sorted(account.positions.items()))
    strategies = tuple(StrategyView(s.name, s.kind, s.status.value, s.error) for s in engine.strategies.values())
    return EngineSnapshot(
        ts=engine.clock.now_ns(), equity=account.equity(), cash=account.cash, starting_cash=account.starting_cash,
        realised=account.realised_pnl(), unrealised=account.unrealised_pnl(), fees=account.fees_paid,
        positions=positions, recent_fills=tuple(engine.fills[-n_fills:]),
        equity_series=tuple(e for _, e in engine.equity_curve[-n_equity:]), strategies=strategies,
        orders=len(engine.orders), open_orders=len(engine.open_orders()), fills=len(engine.fills),
        decisions=len(engine.decisions), events=tuple(list(engine.events)[-n_events:]), risk=engine.risk_view())
