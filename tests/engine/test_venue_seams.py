"""The defects the venue-seams review found, each pinned by a test that failed before the fix, and the seams
themselves: a second broker and feed plug into the same session, the same callbacks come at any latency."""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any

import pytest

from engine.breakers.trading_state import PORTFOLIO, TradingState
from engine.brokers.broker import AccountSnapshot, NotPaperVenue, VenueCapabilities
from engine.brokers.transcript import Transcribed
from engine.clock import Clock, LiveClock, SimClock
from engine.config import AppConfig
from engine.core import Engine
from engine.data.feed import FeedBatch, FeedHealth
from engine.execution.fill_model import FillModel
from engine.model.fill import Fill, FillBasis, Liquidity
from engine.model.instrument import Instrument
from engine.model.market import Bar, BookSnapshot, TradeTick
from engine.model.order import Order, OrderSide, OrderType
from engine.model.venue_event import CancelAck, VenueEvent, VenueEventKind
from engine.session import PaperSession
from engine.strategy.base import Strategy
from tests.conftest import BASE_CONFIG, btc, make_config
from tests.engine.risk_helpers import Desk

SEC = 1_000_000_000


# ---- 1. the emergency stop holds until `resume --reason` ---------------------------------------------------------

def test_halt_then_resume_without_a_reason_cannot_undo_an_emergency_stop():
    desk = Desk()
    desk.buy("a", "BTC/USDT", 1.0)
    now = desk.clock.now_ns
    assert desk.engine.command("emergency-stop", {}, "drill", now())[0]
    ok, line = desk.engine.command("halt", {}, "", now())
    assert not ok and "EMERGENCY_STOPPED" in line
    ok, line = desk.engine.command("pause", {}, "", now())
    assert not ok
    ok, line = desk.engine.command("resume", {}, "", now())
    assert not ok and "needs a reason" in line
    assert desk.state() is TradingState.EMERGENCY_STOPPED
    desk.tick(1.0)
    desk.buy("a", "BTC/USDT", 1.0)
    assert desk.last_order().status.value == "DENIED"  # still latched: nothing trades
    ok, _ = desk.engine.command("resume", {}, "drill over", now())
    assert ok and desk.state() is TradingState.ACTIVE


def test_an_operator_command_only_tightens_except_resume():
    desk = Desk()
    now = desk.clock.now_ns
    assert desk.engine.command("halt", {}, "", now())[0]
    ok, line = desk.engine.command("pause", {}, "", now())  # would lower HALTED to PAUSED with one key
    assert not ok and "loosen" in line and desk.state() is TradingState.HALTED
    assert desk.engine.command("resume", {}, "", now())[0]
    assert desk.engine.command("pause", {}, "", now())[0]
    assert desk.engine.command("halt", {}, "", now())[0]   # tightening is always allowed
    assert desk.state() is TradingState.HALTED


def test_a_strategy_halt_during_an_emergency_stop_is_layered_under_it():
    desk = Desk(strategies={"a": ["BTC/USDT"], "b": ["ETH/USDT"]})
    now = desk.clock.now_ns
    desk.engine.command("emergency-stop", {}, "drill", now())
    ok, line = desk.engine.command("halt", {"strategy": "a"}, "", now())
    assert not ok and "EMERGENCY_STOPPED" in line
    assert desk.engine.guard.states.effective("a").state is TradingState.EMERGENCY_STOPPED
    assert desk.state(PORTFOLIO) is TradingState.EMERGENCY_STOPPED


# ---- 2. a fill is never stamped before its order could have arrived ----------------------------------------------

@pytest.mark.parametrize("latency_ms", [50.0, 2000.0])
def test_paper_fills_meet_the_book_current_when_the_order_arrives(latency_ms):
    config = make_config(venue={"latency_ms": latency_ms})
    session = PaperSession(config)
    books: dict[str, list[BookSnapshot]] = {}
    start = session.clock.now_ns()
    for i in range(1, 1200):  # 1 h of market time, three symbols, books and trades at every step
        batch = session.feed.step_to(start + i * 3 * SEC)  # type: ignore[attr-defined]
        for event in batch.events:
            if type(event) is BookSnapshot:
                books.setdefault(event.symbol, []).append(event)
        session.apply(batch)
    engine = session.engine
    latency = int(latency_ms * 1e6)
    market = [f for f in engine.fills if engine.orders[f.client_id].type is OrderType.MARKET]
    assert len(market) >= 10
    for fill in engine.fills:
        order = engine.orders[fill.client_id]
        assert fill.ts >= order.created_ns + latency, f"{fill.fill_id} stamped before its order arrived"
    for fill in market:
        arrived = engine.orders[fill.client_id].created_ns + latency
        history = books[fill.symbol]
        current = history[bisect.bisect_right([b.ts for b in history], arrived) - 1]  # latest at or before arrival
        levels = current.asks if fill.side is OrderSide.BUY else current.bids
        assert fill.basis is FillBasis.BOOK and fill.price in {p for p, _ in levels}, \
            f"{fill.fill_id} at {fill.price} is not on the {fill.symbol} book that stood when it arrived"


# ---- 3. the same callbacks in the same order at latency 0 and 50 ms ---------------------------------------------

class Recorder(Strategy):
    """Buys on the first bar, sells on the third; writes down every callback it gets."""

    kind = "test_callback_recorder"

    def on_start(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.bars = 0

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        self.calls.append(("bar", bar.ts))
        if self.bars == 1:
            self.target_position(bar.symbol, 1.0)
            self.calls.append(("position after intent", self.position(bar.symbol)))
        elif self.bars == 3:
            self.target_position(bar.symbol, 0.0)
        else:
            self.hold(bar.symbol)

    def on_fill(self, fill: Fill) -> None:
        self.calls.append(("fill", fill.side.name, fill.qty, fill.price))


def recorded_callbacks(latency_ns: int) -> list[tuple[Any, ...]]:
    clock = SimClock(0)
    strategy = Recorder("rec", ["BTC/USDT"], "1m")
    engine = Engine(clock, [btc()], 100_000.0, [strategy], FillModel(latency_ns))
    for second in range(0, 5 * 60, 1):  # the same book every second, a trade every second: fills do not depend on
        ts = second * SEC                 # when within the second an order arrives
        clock.advance_to(ts)
        engine.process(BookSnapshot(ts, "BTC/USDT", ((99.0, 10.0),), ((101.0, 10.0),)))
        engine.process(TradeTick(ts, "BTC/USDT", 100.0, 1.0, OrderSide.BUY))
    return strategy.calls


def test_callbacks_come_in_the_same_order_at_latency_zero_and_fifty_ms():
    ideal, late = recorded_callbacks(0), recorded_callbacks(50_000_000)
    assert ("fill", "BUY", 1.0, 101.0) in ideal and ("fill", "SELL", 1.0, 99.0) in ideal
    assert ideal == late
    # at latency 0 the fill no longer lands inside target_position(): the position is unchanged right after it
    assert ("position after intent", 0.0) in ideal


# ---- the seams: a second broker and a second feed plug into the same session -------------------------------------

class FixedPriceBroker:
    """An in-test venue: accepts everything and fills it whole at one price, when market time next moves."""

    def __init__(self, clock: Clock, price: float, instruments: dict[str, Instrument], paper: bool = True) -> None:
        self.clock = clock
        self.instruments = instruments
        self.price = price
        self.capabilities = VenueCapabilities("fixed-price", paper=paper)
        self.events: deque[VenueEvent] = deque()
        self.connected = False
        self._waiting: list[Order] = []

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        self.connected = False

    def submit(self, order: Order) -> None:
        self._waiting.append(order)

    def cancel(self, client_id: str, reason: str) -> CancelAck:
        return CancelAck.UNKNOWN

    def modify(self, client_id: str, qty: float | None = None, price: float | None = None) -> bool:
        return False

    def advance(self, ts: int) -> None:
        waiting, self._waiting = self._waiting, []
        for order in waiting:
            self.events.append(VenueEvent(VenueEventKind.ACCEPTED, order.client_id, ts))
            fill = Fill(f"{order.client_id}-X", order.client_id, order.strategy, order.symbol, order.side, order.qty,
                        self.price, 0.0, Liquidity.TAKER, ts, FillBasis.VENUE, order.qty, 0, self.price, 0.0)
            self.events.append(VenueEvent(VenueEventKind.FILLED, order.client_id, ts, fill=fill))

    def on_book(self, book: BookSnapshot) -> None:
        """A real venue matches by itself: market data is not its business."""

    def on_trade(self, tick: TradeTick) -> None:
        """As on_book."""

    def on_bar(self, bar: Bar) -> None:
        """As on_book."""

    async def account(self) -> AccountSnapshot:
        return AccountSnapshot()


class ScriptedFeed:
    """An in-test feed: one-minute bars of a rising then falling price, one per batch, then silence."""

    name = "scripted"

    def __init__(self, clock: LiveClock, bars: int) -> None:
        self.start = clock.now_ns() // (60 * SEC) * 60 * SEC
        self.prices = [100.0 + i for i in range(bars // 2)] + [100.0 + bars // 2 - i for i in range(bars - bars // 2)]
        self.sent = 0
        self.subscribed: list[str] = []

    async def connect(self) -> None:
        """Nothing to connect to."""

    async def subscribe(self, symbols: list[str]) -> None:
        self.subscribed = symbols

    async def receive(self) -> FeedBatch:
        return self.step_to(self.start + (self.sent + 1) * 60 * SEC)

    def step_to(self, ts: int) -> FeedBatch:
        if self.sent >= len(self.prices):
            return FeedBatch(ts)  # silent: the session's heartbeats carry market time on
        price = self.prices[self.sent]
        start = self.start + self.sent * 60 * SEC
        self.sent += 1
        return FeedBatch(start + 60 * SEC, [Bar(start, "BTC/USDT", "1m", price, price, price, price, 1.0,
                                                start + 60 * SEC)])

    def health(self) -> FeedHealth:
        return FeedHealth(True, detail=f"{self.sent} bars sent")

    def state(self) -> dict[str, Any] | None:
        return {"sent": self.sent}

    def restore(self, state: dict[str, Any]) -> None:
        self.sent = int(state["sent"])

    async def close(self) -> None:
        """Nothing to close."""


class InTestVenue:
    def __init__(self, price: float = 123.0, paper: bool = True, bars: int = 40) -> None:
        self.price, self.paper, self.bars = price, paper, bars
        self.made: list[Any] = []

    def feed(self, config: AppConfig, clock: LiveClock) -> ScriptedFeed:
        feed = ScriptedFeed(clock, self.bars)
        self.made.append(feed)
        return feed

    def broker(self, config: AppConfig, clock: Clock, instruments: dict[str, Instrument]) -> FixedPriceBroker:
        broker = FixedPriceBroker(clock, self.price, instruments, self.paper)
        self.made.append(broker)
        return broker


def btc_only(**sections: Any) -> AppConfig:
    """One instrument (a configured symbol that never delivers data is stale: the scripted feed has only BTC)."""
    return make_config(instruments=BASE_CONFIG["instruments"][:1],
                       strategies=[{"name": "sma_btc", "kind": "sma_crossover", "symbols": ["BTC/USDT"],
                                    "timeframe": "1m", "params": {"fast": 3, "slow": 8, "size": 0.05}}],
                       **sections)


async def test_a_second_broker_and_feed_plug_into_the_same_session(tmp_path):
    venue = InTestVenue()
    session = PaperSession(btc_only(), db_path=tmp_path / "desk.sqlite", venue=venue)
    await session.open()
    feed, transcribed = session.feed, session.engine.broker
    assert isinstance(transcribed, Transcribed)  # a venue holding our orders: what it reports is saved as heard
    broker = transcribed.inner
    assert isinstance(broker, FixedPriceBroker) and broker.connected and isinstance(feed, ScriptedFeed)
    assert feed.subscribed == ["BTC/USDT"]
    for _ in range(40):
        session.apply(await feed.receive())
    engine = session.engine
    assert engine.fills and all(f.price == 123.0 and f.basis is FillBasis.VENUE for f in engine.fills)
    assert all(o.status.value == "FILLED" for o in engine.orders.values())
    assert engine.account.strategy_qty[("sma_btc", "BTC/USDT")] == sum(f.side * f.qty for f in engine.fills)
    assert len(engine.decisions) >= 30
    assert await session.writer.flush()
    await session.close()
    from tests.store.helpers import query
    assert query(session.db_path, "SELECT COUNT(*) FROM fills")[0][0] == len(engine.fills)


async def test_a_venue_that_is_not_paper_is_refused_before_anything_is_sent(tmp_path):
    venue = InTestVenue(paper=False)
    session = PaperSession(btc_only(), db_path=tmp_path / "desk.sqlite", venue=venue)
    with pytest.raises(NotPaperVenue, match="paper money only"):
        await session.open()
    broker = session.engine.broker
    assert isinstance(broker, Transcribed) and isinstance(broker.inner, FixedPriceBroker)
    assert not broker.inner.connected
    assert not (tmp_path / "desk.sqlite").exists()


# ---- a silent feed is judged on the clock -------------------------------------------------------------------------

async def test_a_silent_feed_reaches_reducing_after_its_staleness_limit_with_no_event_at_all(tmp_path):
    config = btc_only(breakers={"stale_seconds": 150.0})
    session = PaperSession(config, db_path=tmp_path / "desk.sqlite", venue=InTestVenue(bars=10))
    await session.open()
    feed = session.feed
    assert isinstance(feed, ScriptedFeed)
    for _ in range(10):
        session.apply(await feed.receive())
    guard = session.engine.guard
    last_data = session.clock.now_ns()
    assert guard.states.state(PORTFOLIO) is TradingState.ACTIVE
    for i in range(1, 30):  # silence, one wall step a market second apart: only heartbeats move time
        session.apply(feed.step_to(last_data + i * 10 * SEC))
    assert guard.states.state(PORTFOLIO) is TradingState.REDUCING
    cause = guard.states.record(PORTFOLIO).cause
    assert "stale" in cause
    gauge = guard.gauge("market_data")
    assert gauge is not None and gauge.usage > 1.0 and "stale" in gauge.detail
    assert await session.writer.flush()
    await session.close()
    # the silence is recorded, so a replay (recovery, the twin) judges it at the same instants
    from tests.store.helpers import query
    assert query(session.db_path, "SELECT COUNT(*) FROM market_data WHERE kind = 'clock'")[0][0] >= 20


async def test_a_rehearsed_feed_gap_trips_the_market_data_breaker():
    config = make_config(venue={"feed_gaps": [{"start_minutes": 2.0, "minutes": 4.0}]},
                         breakers={"stale_seconds": 60.0})
    session = PaperSession(config)
    start = session.clock.now_ns()
    states = []
    for i in range(1, 200):  # 3 s steps: 10 minutes, a 4-minute outage from minute 2
        session.step(start + i * 3 * SEC)
        states.append(session.engine.guard.states.state(PORTFOLIO))
    in_gap = states[40 + 25:40 + 75]   # 75 s into the outage, until it ends
    assert TradingState.REDUCING in in_gap and all(s is TradingState.REDUCING for s in in_gap[5:])
    assert states[:35] == [TradingState.ACTIVE] * 35
    rows = [line for _, _, line in session.engine.events if "market_data" in line]
    assert any("stale" in line for line in rows)


async def test_a_failing_live_score_task_is_logged_and_restarted(monkeypatch):
    import asyncio

    from engine import session_tasks

    monkeypatch.setattr(session_tasks, "RESTART_DELAY_S", 0.01)
    calls: list[int] = []
    logged: list[tuple[str, str]] = []

    async def score() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("child process vanished")

    task = asyncio.create_task(session_tasks.score_every(0.01, score, lambda level, line: logged.append((level, line))))
    while len(calls) < 4:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(logged) == 2 and all(level == "ERROR" and "vanished" in line for level, line in logged)


async def test_the_simulated_venue_keeps_its_own_ledger_for_reconciliation():
    session = PaperSession(make_config(venue={"latency_ms": 50.0}))
    start = session.clock.now_ns()
    for i in range(1, 600):
        session.step(start + i * 3 * SEC)
    engine = session.engine
    venue = await engine.broker.account()
    assert engine.fills
    ours = {s: p.qty for s, p in engine.account.positions.items() if abs(p.qty) > 1e-12}
    assert venue.positions.keys() == ours.keys()
    assert all(venue.positions[s] == pytest.approx(q, abs=1e-9) for s, q in ours.items())
    assert venue.balances["USDT"] == pytest.approx(engine.account.cash)
    assert set(venue.open_orders) == {o.client_id for o in engine.open_orders()}


async def test_a_venue_holding_the_orders_is_resumed_from_what_it_reported_and_nothing_is_sent_again(tmp_path):
    from tests.store.helpers import query

    db = tmp_path / "desk.sqlite"
    first = PaperSession(btc_only(), db_path=db, venue=InTestVenue())
    await first.open()
    for _ in range(30):
        first.apply(await first.feed.receive())
    made = list(first.engine.fills)
    assert made and first.writer is not None and await first.writer.flush()
    await first.close()
    reports = query(db, "SELECT kind, COUNT(*) FROM venue_events GROUP BY kind ORDER BY kind")
    assert dict(reports) == {"ACCEPTED": len(made), "FILLED": len(made), "SENT": len(made)}

    venue = InTestVenue()
    again = PaperSession(btc_only(), db_path=db, venue=venue)
    await again.open()
    broker = again.engine.broker
    assert isinstance(broker, Transcribed) and isinstance(broker.inner, FixedPriceBroker)
    assert not broker.inner._waiting and not broker.inner.events  # the replay sent the venue nothing
    assert broker.market_seq == again.recovered.events  # it hears the venue again from the next market event
    assert [(f.fill_id, f.qty, f.price, f.ts) for f in again.engine.fills] == [
        (f.fill_id, f.qty, f.price, f.ts) for f in made]
    assert again.engine.strategies["sma_btc"].status.value == "RUNNING"
    for _ in range(10):  # on where it left off
        again.apply(await again.feed.receive())
    assert isinstance(again.feed, ScriptedFeed) and again.feed.sent == 40
    assert await again.writer.flush()
    await again.close()
    sent = query(db, "SELECT client_id FROM venue_events WHERE kind = 'SENT' ORDER BY n")
    assert len(sent) == len({cid for (cid,) in sent}) == len(again.engine.fills)  # each order sent once

    third = PaperSession(btc_only(), db_path=db, venue=InTestVenue())
    await third.open()  # the resumed session's own reports replay too
    assert [f.fill_id for f in third.engine.fills] == [f.fill_id for f in again.engine.fills]
    await third.close()
