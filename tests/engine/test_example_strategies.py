"""The example strategies of examples/strategies/, each loaded from its own config file as a user would run it: they
decide and trade over the simulated market, and a paper session of each on the ideal venue gives exactly the
decisions of its twin backtest (docs/strategies.md: a strategy that keeps the rules behaves the same in both)."""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from console.strategy_commands import run_trial
from engine.config import AppConfig, load_config
from engine.data.bars import timeframe_ns
from engine.model.decision import Signal
from engine.model.market import Bar
from engine.model.order import OrderStatus
from engine.runtime import ideal_venue
from engine.strategy.base import Strategy, StrategyStatus
from engine.strategy.registry import strategy_class
from engine.validation.records import load_session
from engine.validation.twin import run_twin
from engine.validation.validate import validate
from tests.store.helpers import stepped_session

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "strategies"
DOC = REPO / "docs" / "strategies.md"
BARS = 400
STEP_NS = 10_000_000_000  # a market update every 10 s: six trades a minute per symbol, hours of market in seconds
STEPS = 3000              # 8 h 20 min of market time: an hour to warm up, the rest to trade


def example(name: str) -> AppConfig:
    return load_config(EXAMPLES / f"{name}.toml")


def build(config: AppConfig, watch: bool = False) -> Strategy[Any]:
    """The config's one strategy, as the engine builds it; watch: it also writes down every bar it is given."""
    [s] = config.strategies
    cls = strategy_class(s.kind)
    if watch:
        class Watched(cls):
            def on_start(self) -> None:
                self.seen: list[tuple[str, int]] = []
                super().on_start()

            def on_bar(self, bar: Bar) -> None:
                self.seen.append((bar.timeframe, bar.end))
                super().on_bar(bar)

        cls = Watched
    return cls(s.name, s.symbols, s.timeframe, s.params, timeframes=s.timeframes)


def trading(decisions: list[Any]) -> Counter[str]:
    return Counter(d.signal.value for d in decisions if d.signal is not Signal.HOLD)


# ---- over the simulated market (what check-strategy runs) ---------------------------------------------------------

def test_trend_pullback_gets_bars_of_both_timeframes_lower_first_and_decides_on_each_minute():
    config = example("trend_pullback")
    [s] = config.strategies
    assert s.kind == f"{EXAMPLES / 'trend_pullback.py'}:TrendPullback"  # relative to the toml's folder
    assert (s.timeframe, s.timeframes) == ("1m", ["1m", "5m"])
    strategy = build(config, watch=True)
    engine = run_trial(strategy, config, BARS)
    assert strategy.status is StrategyStatus.RUNNING, strategy.error
    seen = strategy.seen
    minutes = [end for tf, end in seen if tf == "1m"]
    fives = [end for tf, end in seen if tf == "5m"]
    assert {tf for tf, _ in seen} == {"1m", "5m"}
    assert len(minutes) == BARS and len(fives) == BARS // 5
    assert all(end % timeframe_ns("5m") == 0 for end in fives)
    for end in fives:  # the one-minute bar that ends with a five-minute bar comes first
        assert seen.index(("1m", end)) + 1 == seen.index(("5m", end))
    decisions = [d for d in engine.decisions if d.strategy == s.name]
    assert [d.ts for d in decisions] == minutes  # one decision per one-minute bar, none on five-minute bars
    assert all(d.reason and d.reason != "no decision" for d in decisions)
    acting = trading(decisions)
    assert acting["LONG"] + acting["SHORT"] >= 2 and acting["FLAT"] >= 1, acting
    orders = [o for o in engine.orders.values() if o.strategy == s.name]
    assert orders and engine.fills
    # each entry is bracketed (the config's exits): its stop loss and take profit are orders too, on the tick grid
    assert len(orders) > acting["LONG"] + acting["SHORT"] + acting["FLAT"]
    assert not [o.reason for o in orders if o.status is OrderStatus.REJECTED]


def test_pair_spread_decides_both_legs_once_both_bars_of_a_minute_are_in():
    config = example("pair_spread")
    [s] = config.strategies
    assert s.symbols == ["BTC/USDT", "ETH/USDT"]
    strategy = build(config)
    engine = run_trial(strategy, config, BARS)
    assert strategy.status is StrategyStatus.RUNNING, strategy.error
    decisions = [d for d in engine.decisions if d.strategy == s.name]
    waiting = [d for d in decisions if d.reason.startswith("waiting for ")]
    assert len(waiting) == BARS  # the first leg's bar of each minute: the spread is not known yet
    decided = [d for d in decisions if d not in waiting]
    assert Counter(d.symbol for d in decided) == {"BTC/USDT": BARS, "ETH/USDT": BARS}  # both legs, every minute
    acting = [d for d in decided if d.signal is not Signal.HOLD]
    assert len(acting) >= 4
    for d in acting:  # the legs move together and opposite: one sells what the other buys
        [other] = [o for o in acting if o.ts == d.ts and o.symbol != d.symbol]
        assert d.reason == other.reason and d.target is not None and other.target is not None
        assert d.target * other.target < 0 or d.target == other.target == 0.0
    orders = [o for o in engine.orders.values() if o.strategy == s.name]
    assert {o.symbol for o in orders} == {"BTC/USDT", "ETH/USDT"} and engine.fills
    assert not [o.reason for o in orders if o.status is OrderStatus.REJECTED]


@pytest.mark.parametrize(("name", "why"), [("trend_pullback", "trend_pullback needs two timeframes"),
                                          ("pair_spread", "pair_spread trades exactly two symbols")])
def test_an_example_with_the_wrong_shape_fails_before_its_first_bar_saying_why(name, why):
    config = example(name)
    [s] = config.strategies
    strategy = strategy_class(s.kind)(s.name, ["BTC/USDT"], "1m", s.params)  # one symbol, one timeframe
    engine = run_trial(strategy, config, 10)
    assert strategy.status is StrategyStatus.FAILED and why in strategy.error
    assert not [d for d in engine.decisions if d.strategy == s.name]


# ---- paper on the ideal venue against its twin (what validate proves) ---------------------------------------------

@pytest.mark.parametrize("name", ["trend_pullback", "pair_spread"])
async def test_an_example_decides_exactly_as_its_twin_in_a_paper_session_on_the_ideal_venue(name, tmp_path):
    db = tmp_path / "desk.sqlite"
    config = ideal_venue(example(name))
    await stepped_session(db, config, steps=STEPS, step_ns=STEP_NS)
    records = load_session(db)
    paper = [(d.ts, d.strategy, d.symbol, d.signal, d.target, d.reason) for d in records.decisions]
    twin = [(d.ts, d.strategy, d.symbol, d.signal, d.target, d.reason) for d in run_twin(records).log.decisions]
    assert paper == twin
    assert records.orders and records.fills
    acting = Counter(signal for _, _, _, signal, _, _ in paper if signal != "HOLD")
    assert acting["LONG"] + acting["SHORT"] >= 3 and acting["FLAT"] >= 3, acting  # entries and exits to compare
    report = validate(db)
    assert report.score.score == 100.0 and report.differences == [] and report.passed
    assert report.score.unmatched_paper == report.score.unmatched_twin == 0


# ---- docs/strategies.md's own code ------------------------------------------------------------------------------

def doc_blocks() -> list[str]:
    """The ```python blocks of docs/strategies.md (one inside a list item is indented), as code."""
    text = DOC.read_text(encoding="utf-8")
    return [textwrap.dedent(code) for _, code in re.findall(r"^( *)```python\n(.*?)^\1```", text, re.S | re.M)]


def test_the_code_in_docs_strategies_md_runs_and_its_strategies_trade_on_the_grid(tmp_path, monkeypatch):
    blocks = doc_blocks()
    strategies = [b for b in blocks if "(Strategy[" in b]
    assert len(strategies) >= 3 and len(blocks) > len(strategies)
    for code in strategies:  # each saved as the file the doc names by its kind, and loaded as a config would
        [kind] = re.findall(r'^    kind = "(\w+)"', code, re.M)
        [name] = re.findall(r"^class (\w+)\(Strategy\[", code, re.M)
        path = tmp_path / "strategies" / f"{kind}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(code, encoding="utf-8")
        strategy = strategy_class(f"{path}:{name}")(kind, ["BTC/USDT"], "1m")
        engine = run_trial(strategy, bars=200)
        assert strategy.status is StrategyStatus.RUNNING, (kind, strategy.error)
        if "def on_bar" in code:
            assert trading([d for d in engine.decisions if d.strategy == kind]), kind
            assert not [o.reason for o in engine.orders.values() if o.status is OrderStatus.REJECTED], kind
    monkeypatch.chdir(tmp_path)  # the doc's test names the strategy's file relative to the current folder
    for code in blocks:
        if code not in strategies:
            exec(compile(code, str(DOC), "exec"), {"__name__": "docs_strategies_md"})
