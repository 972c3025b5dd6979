"""What `paperdesk new-strategy NAME` writes: a commented strategy to edit, and a test that runs it in the engine."""

from __future__ import annotations

from string import Template

STRATEGY = Template('''\
"""$name: a paperdesk strategy. Edit its parameters and on_bar, then check it over built-in data:

    paperdesk check-strategy --config config.toml --strategy $name

Use it from a config file (a relative path is relative to the config file's folder):

    [[strategies]]
    name = "$name"
    kind = "$kind"
    symbols = ["BTC/USDT"]
    timeframe = "1m"
    params = { fast = 10, slow = 30, size = 0.01 }

What a strategy must not do: I/O (files, network, printing), sleeping, reading the wall clock (self.now_ns() is
market time), or randomness the engine did not seed. A replay must see exactly what the paper session saw.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from engine.model.market import Bar
from engine.strategy.base import Strategy, StrategyParams
from engine.strategy.indicators import SMA


class ${cls}Params(StrategyParams):
    """The config's params, validated before anything runs: a wrong type, a value out of bounds or an unknown key
    is an error naming the key. check-strategy lists these with their defaults and bounds."""

    fast: int = Field(10, ge=1, le=10_000, description="bars in the fast moving average")
    slow: int = Field(30, ge=2, le=10_000, description="bars in the slow moving average")
    size: float = Field(0.01, gt=0, le=1e9, description="position held when long (and -size when short), in units "
                                                        "of the base currency")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> ${cls}Params:
        # a rule tying two parameters together: its message is shown as the config error
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be less than slow ({self.slow})")
        return self


class $cls(Strategy[${cls}Params]):
    """Long while the fast average is above the slow one, short while below."""

    kind = "$name"  # the name the session's records show
    Params = ${cls}Params

    def on_start(self) -> None:
        # state lives on the strategy, one set per symbol: never in globals, which every instance would share
        self._fast = {symbol: SMA(self.params.fast) for symbol in self.symbols}
        self._slow = {symbol: SMA(self.params.slow) for symbol in self.symbols}

    def on_bar(self, bar: Bar) -> None:
        # with several timeframes configured, bars of the others arrive too; decisions are made on self.timeframe
        if bar.timeframe != self.timeframe:
            return
        fast = self._fast[bar.symbol].update(bar.close)
        slow = self._slow[bar.symbol].update(bar.close)
        if fast is None or slow is None:
            self.hold(bar.symbol, reason="warming up")
            return
        # indicators are recorded with every decision, so a report can show why it was made
        indicators = {"fast": fast, "slow": slow, "close": bar.close}
        position = self.position(bar.symbol)  # this strategy's own position in the symbol
        size = self.params.size
        # end every bar with one intent per symbol: target_position (the engine orders the difference), buy or
        # sell (an order: market, or limit with price=...), or hold (do nothing, and say why)
        if fast > slow and position <= 0:
            self.target_position(bar.symbol, size, reason="fast average above slow", indicators=indicators)
        elif fast < slow and position >= 0:
            self.target_position(bar.symbol, -size, reason="fast average below slow", indicators=indicators)
        else:
            self.hold(bar.symbol, reason="trend unchanged", indicators=indicators)
''')

TEST = Template('''\
"""Tests of the $name strategy: it loads as the config would load it, and decides over the built-in simulated market.

Run them with the Python paperdesk is installed in: python -m pytest $test_file
"""

from pathlib import Path

import pytest
from pydantic import ValidationError

from console.strategy_commands import run_trial
from engine.model.decision import Signal
from engine.strategy.base import StrategyStatus
from engine.strategy.registry import strategy_class

# the class as config.toml names it: "path/to/$name.py:$cls"
KIND = f"{Path(__file__).with_name('$name.py')}:$cls"
BARS = 300


def test_${name}_decides_on_every_bar_of_the_simulated_market():
    strategy = strategy_class(KIND)("$name", ["BTC/USDT"], "1m", {"fast": 5, "slow": 20})
    engine = run_trial(strategy, bars=BARS)
    assert strategy.status is StrategyStatus.RUNNING, strategy.error
    decisions = [d for d in engine.decisions if d.strategy == "$name"]
    assert len(decisions) == BARS  # one decision per bar, hold included
    acting = [d for d in decisions if d.signal is not Signal.HOLD]
    assert acting, "it never decided to trade over the whole run"
    assert all(d.reason for d in decisions)


def test_${name}_refuses_bad_params():
    cls = strategy_class(KIND)
    with pytest.raises(ValidationError, match="fast"):
        cls("$name", ["BTC/USDT"], "1m", {"fast": 30, "slow": 10})
    with pytest.raises(ValidationError, match="size"):
        cls("$name", ["BTC/USDT"], "1m", {"size": -1.0})
''')


def strategy_text(name: str, cls: str, kind: str) -> str:
    """The strategy file for name, its class cls, as a config refers to it by kind."""
    return STRATEGY.substitute(name=name, cls=cls, kind=kind)


def test_text(name: str, cls: str, test_file: str) -> str:
    """The test file of the strategy name (in the same folder)."""
    return TEST.substitute(name=name, cls=cls, test_file=test_file)
