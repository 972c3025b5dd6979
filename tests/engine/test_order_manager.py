"""The order manager and the guard when venue events are queued: a cancel the venue cannot honour, close-outs that
must go on (or stop), and venue stamps that run behind our clock."""

from __future__ import annotations

from engine.breakers.trading_state import TradingState
from engine.clock import SimClock
from engine.data.feed import FeedBatch
from engine.model.instrument import Instrument
from engine.model.market import BookSnapshot, Heartbeat
from engine.model.order import OrderOrigin, OrderStatus
from engine.replay import replay
from engine.runtime import build_engine
from engine.session import PaperSession
from tests.conftest import make_config
from tests.engine import risk_helpers
from tests.engine.risk_helpers import Desk, breakers

SEC = 1_000_000_000


def test_a_breaker_that_trips_on_one_fill_closes_the_entry_the_venue_filled_in_the_same_instant():
    # both entries reach the venue in one step; the first fill trips the drawdown breaker, whose cancel of the
    # second entry comes too late (the venue filled it): no illegal transition, and that position is closed too
    desk = Desk(breaker_config=breakers(drawdown=1e-7), strategies={"a": ["BTC/USDT"], "b": ["ETH/USDT"]},
                latency_ms=50)
    desk.tick(1)
    desk.buy("a", "BTC/USDT", 1.0)
    desk.buy("b", "ETH/USDT", 1.0)
    for _ in range(4):
        desk.tick(1)
    assert desk.state() is TradingState.COOLDOWN
    assert desk.held("a") == 0.0 and desk.held("b", "ETH/USDT") == 0.0
    assert not desk.engine.open_orders()
    flatten = [o for o in desk.engine.orders.values() if o.origin is OrderOrigin.FLATTEN]
    assert {o.strategy for o in flatten} == {"a", "b"} and all(o.status is OrderStatus.FILLED for o in flatten)


def test_resuming_a_strategy_during_an_emergency_stop_leaves_its_close_out_going():
    desk = Desk(latency_ms=50, depth=1000)
    desk.buy("a", "BTC/USDT", 1.0)
    desk.tick(1)
    desk.tick(1)
    desk.depth = 0.4  # a thin book: each close-out fills only in part
    desk.tick(1)
    now = desk.clock.now_ns
    assert desk.engine.command("emergency-stop", {}, "drill", now())[0]
    ok, line = desk.engine.command("resume", {"strategy": "a"}, "", now())
    assert ok and "stays EMERGENCY_STOPPED" in line
    for _ in range(5):
        desk.tick(1)
    assert desk.state() is TradingState.EMERGENCY_STOPPED and desk.held("a") == 0.0


def test_a_close_out_the_venue_refuses_is_not_resent_on_every_evaluation(monkeypatch):
    monkeypatch.setattr(risk_helpers, "instrument", lambda symbol, tick=0.01, lot=0.001: Instrument(
        symbol, *symbol.split("/"), tick, lot, lot, 10.0, 0.0002, 0.0005))  # a 10 USDT minimum notional
    desk = Desk()
    desk.buy("a", "BTC/USDT", 0.2)   # 20 USDT
    desk.tick(1, BTC=40.0)             # now worth 8: under the minimum, no market order can close it
    desk.engine.command("emergency-stop", {}, "drill", desk.clock.now_ns())
    for _ in range(10):
        desk.tick(1)
    refused = [o for o in desk.engine.orders.values() if o.status is OrderStatus.REJECTED]
    assert len(refused) == 1 and desk.held("a") == 0.2
    assert sum(1 for _, level, line in desk.engine.events if level == "ERROR" and "cannot close" in line) == 1


def test_a_venue_stamp_behind_our_clock_is_handled_alike_live_and_in_replay():
    config = make_config()
    session = PaperSession(config)
    t0 = session.clock.now_ns()
    session.engine.recording = []
    session.apply(FeedBatch(t0 + 5 * SEC, []))  # silent: a heartbeat at our receive time
    late = BookSnapshot(t0 + 4 * SEC, "BTC/USDT", ((99.0, 1.0),), ((101.0, 1.0),))  # the venue's stamp trails it
    session.apply(FeedBatch(t0 + 6 * SEC, [late]))
    recorded = session.engine.recording
    assert [type(e) for e in recorded] == [Heartbeat, BookSnapshot]
    twin = build_engine(config, SimClock(t0))
    assert replay(twin, recorded) == 2
    assert twin.clock.now_ns() == session.clock.now_ns() == t0 + 5 * SEC
