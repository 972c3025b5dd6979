"""Helpers for store tests: a test strategy that rests limit orders, crash simulation, state pictures."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from pydantic import PositiveFloat

from engine.config import AppConfig
from engine.model.market import Bar
from engine.session import PaperSession
from engine.strategy.base import Strategy, StrategyParams
from engine.strategy.registry import register, strategy_kinds


class LadderParams(StrategyParams):
    size: PositiveFloat = 0.01
    offset_bps: PositiveFloat = 5.0


class LimitLadder(Strategy):
    """Alternates resting GTC limit buys below and sells above the close: leaves orders working on the venue."""

    kind = "test_limit_ladder"
    Params = LadderParams

    def on_start(self) -> None:
        self.bars_seen = 0

    def on_bar(self, bar: Bar) -> None:
        self.bars_seen += 1
        off = self.params.offset_bps / 1e4
        if self.bars_seen % 2:
            self.buy(bar.symbol, self.params.size, price=round(bar.close * (1 - off), 2), reason="ladder bid")
        else:
            self.sell(bar.symbol, self.params.size, price=round(bar.close * (1 + off), 2), reason="ladder ask")


if LimitLadder.kind not in strategy_kinds():
    register(LimitLadder)

LADDER = {"name": "ladder_btc", "kind": "test_limit_ladder", "symbols": ["BTC/USDT"], "timeframe": "1m",
          "params": {"size": 0.01, "offset_bps": 3.0}}


async def crash(session: PaperSession) -> None:
    """Drop a session as kill -9 would: queued rows are not written and the session is not closed."""
    writer = session.writer
    writer._task.cancel()
    with suppress(asyncio.CancelledError):
        await writer._task
    await writer.db.close()
    session._lock.release()


STEP_NS = 3_000_000_000  # one market update every 3 s of market time, as the default venue at speed 120


# every stepped session starts at this market time, so how its steps fall into bars and hourly periods (and with
# that its decisions, marks and validation) is the same on every run: from the wall clock, two CI runs differed
MARKET_START_NS = int(datetime(2026, 3, 2, 14, 7, 20, tzinfo=UTC).timestamp()) * 1_000_000_000 \
    + 250_000_000


def session_at(db: Path, config: AppConfig, start_ns: int = MARKET_START_NS) -> PaperSession:
    """A new paper session on db whose market clock starts at start_ns instead of the wall clock's now."""
    with mock.patch("engine.clock.time.time_ns", return_value=start_ns):  # LiveClock reads it once, when built
        return PaperSession(config, db_path=db)


async def stepped_session(db: Path, config: AppConfig, steps: int = 1500, close: bool = True,
                          step_ns: int = STEP_NS, start_ns: int = MARKET_START_NS) -> PaperSession:
    """A session on db, started at start_ns, that takes `steps` market updates step_ns apart and (unless
    close=False) stops."""
    session = session_at(db, config, start_ns)
    await session.open()
    start = session.clock.now_ns()
    for i in range(1, steps + 1):
        ts = start + i * step_ns
        session.step(ts)
        if i % 100 == 0:
            session.engine.mark_equity(ts)
            session.journal.mark(session.engine, ts)
            await session.writer.make_room()
    if close:
        await session.close()
    return session


def engine_state(session: PaperSession) -> dict[str, Any]:
    """Everything that decides what the session does next, as comparable values."""
    e = session.engine
    return {
        "cash": e.account.cash,
        "positions": sorted((s, p.qty, p.avg_price, p.realised_pnl) for s, p in e.account.positions.items()),
        "orders": [(o.client_id, o.status, o.filled_qty, o.avg_fill_price) for o in e.orders.values()],
        "fills": [(f.fill_id, f.qty, f.price, f.ts) for f in e.fills],
        "decisions": [(d.ts, d.strategy, d.symbol, d.signal, d.target) for d in e.decisions],
        "venue": [(w.order.client_id, w.remaining, w.queue_ahead, w.resting)
                  for w in e.broker.simulator._by_id.values()],
        "strategies": [(s.name, s.status) for s in e.strategies.values()],
        "market": session.feed.state(),
    }


def query(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
