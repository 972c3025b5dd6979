"""The strategy API: several timeframes built from one feed (lower first, identical from trades and from bars), the
narrow context a strategy holds (no way to the engine through it; its own orders only), and the callback budget (a
slow strategy is warned about, then paused by a saved command while the others trade on)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from engine.breakers.trading_state import TradingState
from engine.clock import SimClock
from engine.core import Engine
from engine.model.market import Bar, TradeTick
from engine.model.order import OrderSide
from engine.replay import replay
from engine.session import PaperSession
from engine.strategy.base import Strategy, StrategyParams
from engine.strategy.registry import register, strategy_kinds
from tests.conftest import btc, make_config
from tests.store.helpers import query

MIN = 60_000_000_000
T0 = 1_700_000_000 // 3600 * 3600 * 1_000_000_000  # on an hour: every timeframe's boundary


class NoParams(StrategyParams):
    pass


class Recorder(Strategy[NoParams]):
    """Writes down every bar it gets, and decides only when asked to (tests)."""

    kind = "test_bar_recorder"
    Params = NoParams

    def on_start(self) -> None:
        self.seen: list[tuple[str, int, int, float, float, float, float]] = []

    def on_bar(self, bar: Bar) -> None:
        self.seen.append((bar.timeframe, bar.ts, bar.end, bar.open, bar.high, bar.low, bar.close))


class Slow(Strategy[NoParams]):
    """Takes 60 ms over each bar (a test may sleep; a strategy must not)."""

    kind = "test_slow_strategy"
    Params = NoParams

    def on_bar(self, bar: Bar) -> None:
        time.sleep(0.06)
        self.hold(bar.symbol, reason="thinking slowly")


for cls in (Recorder, Slow):
    if cls.kind not in strategy_kinds():
        register(cls)


def engine_with(*strategies: Strategy[Any]) -> Engine:
    return Engine(SimClock(T0), [btc()], 100_000.0, strategies)


# ---- several timeframes ---------------------------------------------------------------------------------------------

PRICES = [100.0 + (i * 7) % 11 for i in range(23)]  # a print every 30 s for 11 minutes


def prints() -> list[TradeTick]:
    return [TradeTick(T0 + i * 30_000_000_000, "BTC/USDT", price, 1.0, OrderSide.BUY)
            for i, price in enumerate(PRICES)]


def by_hand(minutes: int) -> list[tuple[str, int, int, float, float, float, float]]:
    """The bars of `minutes` the prints make, each closed by the first print of the next one."""
    bars = []
    per = 2 * minutes  # prints per bar
    for start in range(0, len(PRICES) - per, per):  # the last, open bar has not closed
        chunk = PRICES[start:start + per]
        ts = T0 + start // 2 * MIN
        bars.append((f"{minutes}m", ts, ts + minutes * MIN, chunk[0], max(chunk), min(chunk), chunk[-1]))
    return bars


def test_bars_of_each_timeframe_close_lower_first_and_decisions_are_made_on_the_first():
    strategy = Recorder("mtf", ["BTC/USDT"], "1m", timeframes=["5m", "1m"])
    assert strategy.timeframes == ["1m", "5m"]
    engine = engine_with(strategy)
    replay(engine, prints())
    one, five = by_hand(1), by_hand(5)
    assert [b for b in strategy.seen if b[0] == "1m"] == one and len(one) == 11
    assert [b for b in strategy.seen if b[0] == "5m"] == five and len(five) == 2
    # the print at 5:00 closes the 4-5 one-minute bar and the 0-5 five-minute bar: the one-minute one first
    assert [b[:3] for b in strategy.seen[4:6]] == [("1m", T0 + 4 * MIN, T0 + 5 * MIN), ("5m", T0, T0 + 5 * MIN)]
    holds = [d for d in engine.decisions if d.strategy == "mtf"]
    assert [d.ts for d in holds] == [b[2] for b in one]  # a 'no decision' HOLD per one-minute bar only


def test_a_backtest_over_one_minute_bars_builds_the_longer_timeframe_as_trades_would():
    from_trades = Recorder("a", ["BTC/USDT"], "1m", timeframes=["1m", "5m"])
    replay(engine_with(from_trades), prints())
    minute_bars = [Bar(ts, "BTC/USDT", tf, o, h, lo, c, 2.0, end)
                   for tf, ts, end, o, h, lo, c in from_trades.seen if tf == "1m"]
    from_bars = Recorder("b", ["BTC/USDT"], "1m", timeframes=["1m", "5m"])
    replay(engine_with(from_bars), minute_bars)
    assert from_bars.seen == from_trades.seen  # same bars, same order, whichever data the engine was given


def test_a_missing_last_minute_still_closes_its_five_minute_bar_before_the_next_one():
    minute = [Bar(T0 + i * MIN, "BTC/USDT", "1m", 10.0 + i, 10.0 + i, 10.0 + i, 10.0 + i, 1.0, T0 + (i + 1) * MIN)
              for i in (0, 1, 2, 3, 5, 6)]  # 4:00-5:00 is missing
    strategy = Recorder("gap", ["BTC/USDT"], "1m", timeframes=["1m", "5m"])
    replay(engine_with(strategy), minute)
    fives = [b for b in strategy.seen if b[0] == "5m"]
    assert fives == [("5m", T0, T0 + 5 * MIN, 10.0, 13.0, 10.0, 13.0)]
    assert strategy.seen.index(fives[0]) == 4  # before the 5:00-6:00 minute


def test_a_timeframe_that_is_not_the_first_of_timeframes_is_refused():
    from engine.config import ConfigError

    with pytest.raises(ConfigError, match="timeframe '5m' is not the first of timeframes"):
        make_config(strategies=[{"name": "x", "kind": "sma_crossover", "symbols": ["BTC/USDT"], "timeframe": "5m",
                                 "timeframes": ["1m", "5m"], "params": {"fast": 2, "slow": 3, "size": 0.01}}])


# ---- the context --------------------------------------------------------------------------------------------------

def test_a_strategy_s_context_is_the_documented_api_only_and_acts_for_itself():
    mine, other = Recorder("mine", ["BTC/USDT"], "1m"), Recorder("other", ["BTC/USDT"], "1m")
    engine = engine_with(mine, other)
    ctx = mine._ctx
    assert ctx is not engine and not hasattr(ctx, "__dict__")
    for internal in ("account", "oms", "guard", "risk", "broker", "strategies", "journal", "clock"):
        assert not hasattr(ctx, internal)
    with pytest.raises(AttributeError):
        ctx.account = engine.account  # type: ignore[attr-defined]
    other.buy("BTC/USDT", 1.0, price=50.0, reason="rests")
    [theirs] = other.open_orders()
    assert mine.open_orders() == [] and not mine.cancel(theirs.client_id)  # not its order
    assert engine.orders[theirs.client_id].is_open
    assert mine.position("BTC/USDT") == 0.0 and mine.equity() == pytest.approx(100_000.0)
    assert mine.trading_state() == TradingState.ACTIVE.value
    ok, _ = engine.command("halt", {"strategy": "mine"}, "test", T0)
    assert ok and mine.trading_state() == "HALTED" and other.trading_state() == "ACTIVE"
    assert other.cancel(theirs.client_id) and other.open_orders() == []


# ---- the callback budget ------------------------------------------------------------------------------------------

async def test_a_slow_strategy_is_warned_about_then_paused_and_the_others_trade_on(tmp_path):
    db = tmp_path / "desk.sqlite"
    config = make_config(
        session={"strategy_budget_ms": 25.0, "strategy_overruns": 3},
        strategies=[{"name": "slow", "kind": Slow.kind, "symbols": ["ETH/USDT"], "timeframe": "1m"},
                    {"name": "sma_btc", "kind": "sma_crossover", "symbols": ["BTC/USDT"], "timeframe": "1m",
                     "params": {"fast": 3, "slow": 8, "size": 0.05}}])
    session = PaperSession(config, db_path=db)
    await session.run(duration=4.0)
    engine = session.engine
    warnings = [m for _, level, m in engine.events if level == "WARN" and m.startswith("strategy slow took ")]
    assert len(warnings) >= 3 and all(" ms in on_bar, over its 25 ms budget" in m for m in warnings)
    assert engine.guard.states.state("slow") is TradingState.PAUSED
    assert engine.guard.states.state("sma_btc") is not TradingState.PAUSED  # its own breakers may cool it down
    [(command, source, reason)] = query(db, "SELECT command, source, reason FROM commands")
    assert (command, source) == ("pause", "engine") and "over its 25 ms budget 3 times" in reason
    assert any(d.strategy == "sma_btc" for d in engine.decisions[-20:])  # the others trade on

    again = PaperSession(config, db_path=db)
    await again.open()  # a replay is not timed: the saved command pauses it at the same point
    assert again.engine.guard.states.state("slow") is TradingState.PAUSED
    await again.close()


class BadStart(Strategy[NoParams]):
    kind = "test_bad_on_start"
    Params = NoParams

    def on_start(self) -> None:
        raise RuntimeError("no config file at /nowhere")


if BadStart.kind not in strategy_kinds():
    register(BadStart)


def test_a_strategy_whose_on_start_raises_is_failed_and_the_others_trade_on():
    bad, good = BadStart("bad", ["BTC/USDT"], "1m"), Recorder("good", ["BTC/USDT"], "1m")
    engine = engine_with(bad, good)
    assert bad.status.value == "FAILED" and "RuntimeError: no config file at /nowhere" in bad.error
    replay(engine, prints())
    assert good.seen and not [d for d in engine.decisions if d.strategy == "bad"]


# ---- a trailing stop starts from its own position's prices -----------------------------------------------------------

class TrailTwice(Strategy[NoParams]):
    """Enters with a 1% trailing stop, and again while the first trailing exit is still on its way to the venue."""

    kind = "test_trail_twice"
    Params = NoParams

    def on_start(self) -> None:
        self.prints = 0

    def on_tick(self, tick: TradeTick) -> None:
        self.prints += 1
        if self.prints in (1, 5):
            self.buy(tick.symbol, 1.0, trailing_stop=0.01, take_profit=200.0, stop_loss=50.0, reason="in")


if TrailTwice.kind not in strategy_kinds():
    register(TrailTwice)


def test_a_new_position_s_trailing_stop_does_not_start_from_the_previous_position_s_best_price():
    from engine.execution.fill_model import FillModel
    from engine.model.market import BookSnapshot

    events: list[Any] = []
    for i, price in enumerate([100, 101, 110, 110, 108, 108, 108, 108, 108, 108.5, 108.4, 108.3, 108.2]):
        ts = T0 + i * 1_000_000_000
        events.append(BookSnapshot(ts, "BTC/USDT", ((price - 0.01, 100.0),), ((price + 0.01, 100.0),)))
        events.append(TradeTick(ts + 1, "BTC/USDT", price, 0.001, OrderSide.BUY))
    strategy = TrailTwice("t", ["BTC/USDT"], "1m")
    engine = Engine(SimClock(T0), [btc(min_notional=1.0)], 1e6, [strategy],
                    fill_model=FillModel(latency_ns=300_000_000))  # the second entry goes out before the exit fills
    replay(engine, events)
    trailing = [o for o in engine.orders.values() if o.reason.startswith("trailing stop")]
    # the first position ran to 110 and trailed out at 108; the second, bought at 108.01, never got 1% off its best
    assert [o.reason for o in trailing] == ["trailing stop: 108 is 1.00% off the best 110"]
    assert engine.account.strategy_qty[("t", "BTC/USDT")] == 1.0


class OffGrid(Strategy[NoParams]):
    """Buys on the first print with exits a strategy computed (off the 0.01 grid), and holds on its fill."""

    kind = "test_off_grid_exits"
    Params = NoParams

    def on_start(self) -> None:
        self.fill_decision_ts: int | None = None

    def on_tick(self, tick: TradeTick) -> None:
        if not self.position(tick.symbol) and not self.open_orders(tick.symbol) and self.fill_decision_ts is None:
            self.buy(tick.symbol, 1.0, stop_loss=tick.price * 0.98765, take_profit=tick.price * 1.01234)

    def on_fill(self, fill: Any) -> None:
        self.hold(fill.symbol, reason="filled")
        self.fill_decision_ts = fill.ts


if OffGrid.kind not in strategy_kinds():
    register(OffGrid)


def test_a_strategy_s_own_exit_prices_go_on_the_grid_and_a_decision_on_a_fill_has_the_fill_s_time():
    from engine.model.market import BookSnapshot

    strategy = OffGrid("g", ["BTC/USDT"], "1m")
    engine = engine_with(strategy)
    replay(engine, [BookSnapshot(T0, "BTC/USDT", ((99.99, 100.0),), ((100.01, 100.0),)),
                    TradeTick(T0 + 5, "BTC/USDT", 100.0, 0.001, OrderSide.BUY),
                    BookSnapshot(T0 + 10, "BTC/USDT", ((99.99, 100.0),), ((100.01, 100.0),))])
    exits = sorted((o.type.value, o.price or o.stop_price) for o in engine.open_orders())
    assert exits == [("LIMIT", 101.23), ("STOP", 98.76)]  # 101.234 and 98.7649.. on the 0.01 grid, not refused
    [fill] = engine.fills
    [on_fill] = [d for d in engine.decisions if d.reason == "filled"]
    assert on_fill.ts == fill.ts == strategy.fill_decision_ts
