"""Each breaker trips on the simulated venue in market time: state, cancellations, audit rows, expiry."""

import random

from engine.breakers.trading_state import PORTFOLIO, TradingState
from engine.model.order import OrderStatus
from engine.risk.manager import StrategyRules
from tests.engine.risk_helpers import Desk, breakers, risk


def states(desk):
    return [(p["scope"], p["state"], p["source"]) for p in desk.audit("state")]


def test_daily_loss_cools_down_cancels_entries_and_expires_after_four_hours():
    desk = Desk(breaker_config=breakers(daily_loss=0.01))
    desk.buy("a", "BTC/USDT", 100.0)                  # 10 000 of 100 000
    desk.buy("a", "BTC/USDT", 5.0, price=80.0)        # a resting entry
    resting = desk.last_order()
    assert desk.guard.gauge("daily_loss").usage < 0.1
    desk.tick(BTC=95.0)                               # -500: half the limit
    assert 0.45 < desk.guard.gauge("daily_loss").usage < 0.55
    desk.tick(BTC=88.0)                               # -1200 > 1%
    assert desk.state() is TradingState.COOLDOWN
    assert resting.status is OrderStatus.CANCELED and "COOLDOWN" in resting.reason
    assert ("portfolio", "COOLDOWN", "daily_loss") in states(desk)
    desk.buy("a", "BTC/USDT", 1.0)
    assert desk.last_order().denial.rule == "trading_state"
    desk.sell("a", "BTC/USDT", 50.0)                  # exits are still managed
    assert desk.held("a") == 50.0
    desk.tick(4 * 3600 - 10, BTC=99.0)               # the loss is back inside the limit
    assert desk.state() is TradingState.COOLDOWN
    desk.tick(20)
    assert desk.state() is TradingState.ACTIVE
    assert ("portfolio", "ACTIVE", "daily_loss") in states(desk)


def test_daily_loss_still_beyond_the_limit_after_the_cooldown_trips_again():
    desk = Desk(breaker_config=breakers(daily_loss=0.01))
    desk.buy("a", "BTC/USDT", 100.0)
    desk.tick(BTC=85.0)
    assert desk.state() is TradingState.COOLDOWN
    desk.tick(4 * 3600 + 1)
    assert desk.state() is TradingState.COOLDOWN
    assert [p["state"] for p in desk.audit("state")] == ["COOLDOWN", "ACTIVE", "COOLDOWN"]


def test_drawdown_is_measured_from_the_peak_closes_everything_and_cools_down_a_day():
    desk = Desk(breaker_config=breakers(drawdown=0.03), strategies={"a": ["BTC/USDT"], "b": ["ETH/USDT"]})
    desk.buy("a", "BTC/USDT", 200.0)
    desk.buy("b", "ETH/USDT", 100.0)
    desk.tick(BTC=130.0)                              # equity peaks at about 106 000
    desk.tick(BTC=116.0)                              # -2.6% from the peak, but +3.2% from the start
    assert desk.state() is TradingState.ACTIVE
    assert desk.guard.gauge("drawdown").usage > 0.8
    desk.tick(BTC=113.0)                              # -3.2% from the peak
    assert desk.state() is TradingState.COOLDOWN
    desk.tick()                                       # the market orders fill on the next prints
    assert desk.held("a") == 0.0 and desk.held("b", "ETH/USDT") == 0.0
    assert not desk.engine.open_orders()
    flatten = [o for o in desk.engine.orders.values() if o.origin == "flatten"]
    assert len(flatten) == 2 and all("drawdown" in o.reason or o.status is OrderStatus.FILLED for o in flatten)
    desk.tick(24 * 3600)
    assert desk.state() is TradingState.ACTIVE


def test_slow_acknowledgements_pause_entries_for_an_hour():
    desk = Desk(breaker_config=breakers(order_latency_seconds=2.0), latency_ms=3000.0)
    desk.buy("a", "BTC/USDT", 1.0)
    desk.tick(4.0)                                    # the order arrives after 3 s of market time
    assert desk.held("a") == 1.0
    assert desk.state() is TradingState.PAUSED
    desk.buy("a", "BTC/USDT", 1.0)
    assert desk.last_order().denial.rule == "trading_state"
    desk.tick(3600)
    assert desk.state() is TradingState.ACTIVE


def test_correlated_positions_are_cut_to_the_larger_one():
    desk = Desk(risk(sample_seconds=60.0, min_samples=20), breakers(correlation=0.7),
                strategies={"a": ["BTC/USDT"], "b": ["ETH/USDT"]})
    desk.buy("a", "BTC/USDT", 100.0)                  # ~10 000
    desk.buy("b", "ETH/USDT", 50.0)                   # ~2 500: the smaller
    rng = random.Random(9)
    for _ in range(19):   # one return per minute: fewer than min_samples, so no verdict yet
        r = rng.gauss(0, 0.005)
        desk.tick(60.0, BTC=desk.prices["BTC/USDT"] * (1 + r), ETH=desk.prices["ETH/USDT"] * (1 + r))
    assert desk.held("b", "ETH/USDT") == 50.0
    for _ in range(3):
        r = rng.gauss(0, 0.005)
        desk.tick(60.0, BTC=desk.prices["BTC/USDT"] * (1 + r), ETH=desk.prices["ETH/USDT"] * (1 + r))
    desk.tick()
    assert desk.held("b", "ETH/USDT") == 0.0 and desk.held("a") == 100.0
    trip = [p for p in desk.audit("state") if p["source"] == "correlation"]
    assert trip and "ETH/USDT" in trip[0]["cause"]
    assert desk.state() is TradingState.ACTIVE        # a cut, not a state


def test_consecutive_losing_trades_cool_down_only_that_strategy():
    desk = Desk(breaker_config=breakers(consecutive_losses=3, losses_cooldown_hours=1.0),
                strategies={"a": ["BTC/USDT"], "b": ["BTC/USDT"]})
    for _ in range(3):
        desk.buy("a", "BTC/USDT", 1.0)
        desk.tick(BTC=desk.prices["BTC/USDT"] - 2.0)
        desk.sell("a", "BTC/USDT", 1.0)
    assert desk.state("a") is TradingState.COOLDOWN
    assert desk.state() is TradingState.ACTIVE
    desk.buy("a", "BTC/USDT", 1.0)
    assert desk.last_order().denial.rule == "trading_state"
    desk.buy("b", "BTC/USDT", 1.0)
    assert desk.held("b") == 1.0
    desk.tick(3601)
    assert desk.state("a") is TradingState.ACTIVE


def test_a_volatility_spike_pauses():
    desk = Desk(risk(sample_seconds=60.0, min_samples=10),
                breakers(volatility_spike=3.0, volatility_short_samples=3, volatility_long_samples=30,
                         volatility_pause_hours=0.5))
    rng = random.Random(3)
    for _ in range(40):
        desk.tick(60.0, BTC=desk.prices["BTC/USDT"] * (1 + rng.gauss(0, 0.001)))
    assert desk.state() is TradingState.ACTIVE
    for move in (1.05, 0.94, 1.06):
        desk.tick(60.0, BTC=desk.prices["BTC/USDT"] * move)
    assert desk.state() is TradingState.PAUSED
    desk.buy("a", "BTC/USDT", 1.0)
    assert desk.last_order().denial.rule == "trading_state"
    desk.tick(1800)
    assert desk.state() is TradingState.ACTIVE


def test_a_stale_feed_reduces_until_data_returns():
    desk = Desk(breaker_config=breakers(stale_seconds=10.0))
    desk.buy("a", "BTC/USDT", 2.0)
    eth = desk.prices.pop("ETH/USDT")                 # ETH goes quiet; BTC keeps printing
    for _ in range(12):
        desk.tick(1.0)
    assert desk.state() is TradingState.REDUCING
    cause = desk.guard.states.record(PORTFOLIO).cause
    assert "ETH/USDT" in cause and "stale" in cause
    desk.buy("a", "BTC/USDT", 1.0)
    assert desk.last_order().denial.rule == "trading_state"
    desk.sell("a", "BTC/USDT", 1.0)                   # only exposure-reducing orders
    assert desk.held("a") == 1.0
    desk.prices["ETH/USDT"] = eth
    desk.tick(1.0)
    desk.tick(1.0)
    assert desk.state() is TradingState.ACTIVE


def test_a_crossed_book_reduces_until_clean_data_has_followed():
    from engine.model.market import BookSnapshot

    desk = Desk(breaker_config=breakers(healthy_after_seconds=30.0))
    ts = desk.clock.now_ns() + 10**9
    desk.clock.advance_to(ts)
    desk.engine.process(BookSnapshot(ts, "BTC/USDT", ((101.0, 1.0),), ((100.0, 1.0),)))
    desk.tick(1.0)
    assert desk.state() is TradingState.REDUCING and "crossed" in desk.guard.states.record(PORTFOLIO).cause
    desk.tick(40.0)
    desk.tick(1.0)  # health is judged when a timestamp is complete, so at the next one
    assert desk.state() is TradingState.ACTIVE


def test_a_late_step_that_brings_every_symbol_is_not_a_stale_feed():
    desk = Desk(breaker_config=breakers(stale_seconds=10.0))
    desk.buy("a", "BTC/USDT", 1.0, price=90.0)
    desk.tick(1.0)
    desk.tick(120.0)            # the whole market arrives two minutes late (a stalled loop, a slow link)
    desk.tick(1.0)
    assert desk.state() is TradingState.ACTIVE and desk.last_order().is_open


def test_data_stamped_far_from_the_engine_clock_is_skew():
    from engine.model.market import TradeTick
    from engine.model.order import OrderSide

    desk = Desk(breaker_config=breakers(max_clock_skew_seconds=5.0))
    now = desk.clock.now_ns()
    desk.engine.process(TradeTick(now - 60 * 10**9, "BTC/USDT", 100.0, 1.0, OrderSide.BUY))
    desk.tick(1.0)
    assert desk.state() is TradingState.REDUCING and "skew" in desk.guard.states.record(PORTFOLIO).cause


def test_a_gap_between_bars_is_unhealthy():
    from engine.model.market import Bar

    desk = Desk(breaker_config=breakers(healthy_after_seconds=60.0))
    start = desk.clock.now_ns()
    for i, gap in ((1, 0), (2, 0), (5, 3)):
        end = start + (i + gap) * 60 * 10**9
        desk.clock.advance_to(end)
        desk.engine.process(Bar(end - 60 * 10**9, "BTC/USDT", "1m", 100, 101, 99, 100, 5.0, end))
    desk.tick(1.0)
    assert desk.state() is TradingState.REDUCING and "gap" in desk.guard.states.record(PORTFOLIO).cause


def test_manual_halt_pause_resume_per_scope():
    desk = Desk(strategies={"a": ["BTC/USDT"], "b": ["BTC/USDT"]})
    desk.buy("a", "BTC/USDT", 1.0, price=90.0)
    entry = desk.last_order()
    ok, line = desk.engine.command("pause", {"strategy": "a"}, "looks odd", desk.clock.now_ns())
    assert ok and desk.state("a") is TradingState.PAUSED and entry.is_open  # pause leaves resting orders
    ok, _ = desk.engine.command("halt", {"strategy": "a"}, "", desk.clock.now_ns())
    assert entry.status is OrderStatus.CANCELED                            # halt cancels entries
    desk.buy("b", "BTC/USDT", 1.0)
    assert desk.held("b") == 1.0
    ok, line = desk.engine.command("resume", {"strategy": "nobody"}, "", desk.clock.now_ns())
    assert not ok and "no strategy named 'nobody'" in line
    ok, _ = desk.engine.command("resume", {"strategy": "a"}, "checked", desk.clock.now_ns())
    assert desk.state("a") is TradingState.ACTIVE
    # pause, then halt (replacing the operator's pause), then resume
    assert [(p["source"], p["state"]) for p in desk.audit("state")] == [
        ("operator", "PAUSED"), ("operator", "HALTED"), ("operator", "ACTIVE")]


def test_a_portfolio_resume_says_which_strategies_stay_restricted_on_their_own():
    desk = Desk(strategies={"a": ["BTC/USDT"], "b": ["BTC/USDT"]})
    now = desk.clock.now_ns()
    desk.engine.command("pause", {"strategy": "a"}, "looks odd", now)
    desk.engine.command("halt", {}, "lunch", now)
    ok, line = desk.engine.command("resume", {}, "back", now)
    assert ok and line.startswith("portfolio: now ACTIVE")
    assert "strategies still restricted on their own: a PAUSED (operator: looks odd)" in line
    assert "resume --strategy NAME" in line and " b " not in line
    assert desk.state("a") is TradingState.PAUSED
    desk.engine.command("resume", {"strategy": "a"}, "checked", now)
    ok, line = desk.engine.command("resume", {}, "again", now)
    assert ok and line == "portfolio was not halted (ACTIVE)"


def test_emergency_stop_flattens_latches_and_needs_a_reason_to_resume():
    desk = Desk(strategies={"a": ["BTC/USDT"], "b": ["ETH/USDT"]},
                rules={"a": StrategyRules()})
    desk.buy("a", "BTC/USDT", 3.0)
    desk.sell("b", "ETH/USDT", 2.0)
    desk.buy("a", "BTC/USDT", 1.0, price=90.0)
    ok, line = desk.engine.command("emergency-stop", {}, "drill", desk.clock.now_ns())
    assert ok and "canceled 1 open orders, closing 2 positions" in line
    assert desk.state() is TradingState.EMERGENCY_STOPPED
    assert desk.held("a") == 0.0 and desk.held("b", "ETH/USDT") == 0.0   # latency 0: flat at once
    ok, line = desk.engine.command("emergency-stop", {}, "again", desk.clock.now_ns())
    assert ok and "canceled 0 open orders, closing 0 positions" in line  # idempotent
    desk.sell("a", "BTC/USDT", 1.0)
    assert desk.last_order().denial.rule == "trading_state"             # nothing trades, exits included
    ok, line = desk.engine.command("resume", {}, "", desk.clock.now_ns())
    assert not ok and "needs a reason" in line
    assert desk.state() is TradingState.EMERGENCY_STOPPED
    ok, _ = desk.engine.command("resume", {}, "drill over", desk.clock.now_ns())
    assert ok and desk.state() is TradingState.ACTIVE


def test_emergency_stop_keeps_closing_until_flat_when_the_book_is_thin():
    desk = Desk(depth=1.0)
    for _ in range(3):
        desk.buy("a", "BTC/USDT", 1.0)
        desk.tick(1.0)
    assert desk.held("a") == 3.0
    desk.engine.command("emergency-stop", {}, "drill", desk.clock.now_ns())
    assert desk.held("a") == 2.0                      # the book had one unit
    for _ in range(3):
        desk.tick(1.0)
    assert desk.held("a") == 0.0 and not desk.engine.open_orders() and not desk.guard.flattening


def test_resume_does_not_override_market_data_health():
    desk = Desk(breaker_config=breakers(stale_seconds=10.0))
    desk.engine.command("halt", {}, "", desk.clock.now_ns())
    desk.prices.pop("ETH/USDT")
    for _ in range(12):
        desk.tick(1.0)
    assert desk.state() is TradingState.HALTED
    desk.engine.command("resume", {}, "back", desk.clock.now_ns())
    assert desk.state() is TradingState.REDUCING      # the feed is still stale
