"""Strategies through the ordinary backtest path, checked against independent reference arithmetic."""

import math

import pytest

from engine.backtest import run_backtest
from engine.clock import SimClock
from engine.core import Engine
from engine.data.bar_file import load_bar_file
from engine.model.decision import Signal
from engine.model.instrument import Instrument
from engine.model.market import Bar
from engine.replay import replay
from engine.strategy.base import Strategy, StrategyStatus
from engine.strategy.builtins.sma_crossover import SmaCrossover
from engine.strategy.registry import strategy_class, strategy_kinds
from tests.conftest import make_config, write_bars


def reference_sma_cross(opens, closes, fast, slow, size, commission, cash):
    """backtrader's rules written out plainly: cross on the last non-zero difference, fill at the next open."""
    position, orders, pending, last_nonzero = 0.0, 0, None, None
    for i in range(len(closes)):
        if pending is not None:  # fill at this bar's open
            qty = pending - position
            cash -= qty * opens[i] + abs(qty) * opens[i] * commission
            position, pending = pending, None
        if i + 1 < slow:
            continue
        diff = math.fsum(closes[i + 1 - fast:i + 1]) / fast - math.fsum(closes[i + 1 - slow:i + 1]) / slow
        before = last_nonzero
        if diff or before is None:
            last_nonzero = diff
        if before is None:
            continue
        if before < 0 < diff and position <= 0:
            pending, orders = size, orders + 1
        elif before > 0 > diff and position >= 0:
            pending, orders = -size, orders + 1
    return orders, cash + position * closes[-1]


@pytest.mark.parametrize(("fast", "slow", "seed"), [(10, 30, 1), (5, 20, 2), (3, 8, 3)])
def test_sma_crossover_matches_the_reference_rules(tmp_path, fast, slow, seed):
    bars = load_bar_file(write_bars(tmp_path / "b.csv", 3000, seed=seed), "BTC/USDT")
    instrument = Instrument("BTC/USDT", "BTC", "USDT", 0.01, 1e-8, 1e-8, 0.0, 0.001, 0.001)
    strategy = SmaCrossover("sma", ["BTC/USDT"], bars.timeframe, {"fast": fast, "slow": slow, "size": 0.1})
    engine = Engine(SimClock(), [instrument], 1_000_000.0, [strategy])
    replay(engine, bars.bars())
    orders, equity = reference_sma_cross(bars.open.tolist(), bars.close.tolist(), fast, slow, 0.1, 0.001,
                                         1_000_000.0)
    assert orders > 20
    assert len(engine.orders) == orders
    assert engine.account.equity() == pytest.approx(equity, abs=0.005)
    assert len(engine.decisions) == len(bars)  # every bar is a decision, warming up and holding included


@pytest.mark.parametrize("kind", ["sma_crossover", "rsi_momentum", "bollinger_mean_reversion"])
def test_every_builtin_decides_on_every_bar_with_its_indicators(tmp_path, kind):
    data = write_bars(tmp_path / "b.csv", 400)
    result = run_backtest(make_config(venue={"latency_ms": 0.0}), data, strategy_kind=kind, params={"size": 0.01})
    engine = result.engine
    assert len(engine.decisions) == 400
    assert len(engine.orders) > 0
    acting = [d for d in engine.decisions if d.signal is not Signal.HOLD]
    assert acting and all(d.indicators and d.reason and d.target is not None for d in acting)
    warm = [d for d in engine.decisions if d.reason != "warming up"]
    assert all(d.indicators for d in warm)
    assert [d.ts for d in engine.decisions] == sorted(d.ts for d in engine.decisions)


def test_registry_knows_the_builtins_and_names_them_on_a_miss():
    assert {"bollinger_mean_reversion", "rsi_momentum", "sma_crossover"} <= set(strategy_kinds())
    with pytest.raises(KeyError, match="unknown strategy 'nope'; known: bollinger_mean_reversion"):
        strategy_class("nope")


class Exploding(Strategy):
    kind = "exploding_test"

    def on_bar(self, bar: Bar) -> None:
        if len(self.seen) == 5:
            raise ZeroDivisionError("boom")
        self.seen.append(bar)
        self.hold(bar.symbol, reason="ok")

    def on_start(self) -> None:
        self.seen = []


def test_a_failing_strategy_is_marked_failed_and_the_others_go_on(tmp_path):
    bars = load_bar_file(write_bars(tmp_path / "b.csv", 300), "BTC/USDT")
    instrument = Instrument("BTC/USDT", "BTC", "USDT", 0.01, 1e-8, 1e-8, 0.0, 0.001, 0.001)
    bad = Exploding("bad", ["BTC/USDT"], bars.timeframe)
    good = SmaCrossover("good", ["BTC/USDT"], bars.timeframe, {"fast": 3, "slow": 8, "size": 0.1})
    engine = Engine(SimClock(), [instrument], 1_000_000.0, [bad, good])
    replay(engine, bars.bars())
    assert bad.status is StrategyStatus.FAILED and "ZeroDivisionError: boom" in bad.error
    assert len(bad.seen) == 5
    assert good.status is StrategyStatus.RUNNING
    assert sum(d.strategy == "good" for d in engine.decisions) == 300
    assert len(engine.orders) > 0
    assert any("bad FAILED" in message for _, level, message in engine.events if level == "ERROR")


def test_params_are_validated_by_each_strategy():
    with pytest.raises(ValueError, match="fast .10. must be less than slow .5."):
        SmaCrossover("x", ["BTC/USDT"], "1m", {"fast": 10, "slow": 5})
    with pytest.raises(ValueError, match="Extra inputs"):
        SmaCrossover("x", ["BTC/USDT"], "1m", {"fsat": 10})


def test_target_position_orders_only_the_difference(tmp_path):
    """Several strategies on one symbol: each one's target counts its own position and pending orders."""

    class Target(Strategy):
        kind = "target_test"

        def on_bar(self, bar: Bar) -> None:
            self.target_position(bar.symbol, 0.3 if bar.close > 0 else 0.0)

    bars = load_bar_file(write_bars(tmp_path / "b.csv", 10), "BTC/USDT")
    instrument = Instrument("BTC/USDT", "BTC", "USDT", 0.01, 0.001, 0.001, 0.0, 0.0, 0.0)
    a, b = Target("a", ["BTC/USDT"], bars.timeframe), Target("b", ["BTC/USDT"], bars.timeframe)
    engine = Engine(SimClock(), [instrument], 1_000_000.0, [a, b])
    replay(engine, bars.bars())
    assert len(engine.orders) == 2  # one per strategy, though both asked on every bar
    assert engine.account.position_qty("BTC/USDT") == pytest.approx(0.6)
    assert engine.strategy_position("a", "BTC/USDT") == pytest.approx(0.3)


def test_bars_of_several_timeframes_are_built_from_one_tick_stream_and_ticks_reach_tick_strategies():
    from engine.model.market import TradeTick
    from engine.model.order import OrderSide

    class Recorder(Strategy):
        kind = "recorder_test"

        def on_start(self) -> None:
            self.bars = []

        def on_bar(self, bar: Bar) -> None:
            self.bars.append(bar)
            self.hold(bar.symbol, reason="seen")

    class TickTrader(Strategy):
        kind = "tick_trader_test"

        def on_tick(self, tick) -> None:
            if tick.price > 105 and not self.bought:
                self.bought = True
                self.buy(tick.symbol, 0.1, reason="price above 105")

        def on_start(self) -> None:
            self.bought = False

    instrument = Instrument("BTC/USDT", "BTC", "USDT", 0.01, 0.001, 0.001, 0.0, 0.0, 0.0)
    one, five = Recorder("one", ["BTC/USDT"], "1m"), Recorder("five", ["BTC/USDT"], "5m")
    ticker = TickTrader("ticker", ["BTC/USDT"], "1m")
    clock = SimClock()
    engine = Engine(clock, [instrument], 1_000_000.0, [one, five, ticker])
    s = 10**9
    for minute in range(11):
        ts = minute * 60 * s + 30 * s
        clock.advance_to(ts)
        engine.process(TradeTick(ts, "BTC/USDT", 100.0 + minute, 1.0, OrderSide.BUY))
    assert [b.ts // (60 * s) for b in one.bars] == list(range(10))
    assert [(b.ts // (60 * s), b.open, b.close) for b in five.bars] == [(0, 100.0, 104.0), (5, 105.0, 109.0)]
    assert all(d.ts == b.end for d, b in zip([d for d in engine.decisions if d.strategy == "one"], one.bars,
                                             strict=True))
    tick_decisions = [d for d in engine.decisions if d.strategy == "ticker"]
    assert len(tick_decisions) == 1 and tick_decisions[0].signal is Signal.BUY
    assert tick_decisions[0].ts == 6 * 60 * s + 30 * s
    # no book: the market order takes from the next printed trade (minute 7, price 107)
    assert [(f.price, f.qty, f.ts) for f in engine.fills] == [(107.0, 0.1, 7 * 60 * s + 30 * s)]
