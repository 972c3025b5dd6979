"""Long when the fast SMA crosses above the slow one, short when it crosses below.

Crossings follow backtrader's CrossOver: a cross needs the last non-zero difference on the other
side, so equal averages neither cross nor reset the state (the peer benchmark relies on this).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, model_validator

from engine.model.market import Bar
from engine.strategy.base import Strategy, StrategyParams
from engine.strategy.indicators import SMA
from engine.strategy.registry import register


class SmaCrossoverParams(StrategyParams):
    fast: int = Field(10, gt=0, le=100_000)
    slow: int = Field(30, gt=0, le=100_000)
    size: float = Field(0.1, gt=0, le=1e12)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be less than slow ({self.slow})")
        return self


@dataclass(slots=True)
class _SymbolState:
    fast: SMA
    slow: SMA
    last_nonzero_diff: float | None = None


@register
class SmaCrossover(Strategy[SmaCrossoverParams]):
    kind = "sma_crossover"
    Params = SmaCrossoverParams

    def lookback(self) -> int:
        return self.params.slow + 1  # a full slow average, and the one before it to see a cross

    def on_start(self) -> None:
        p = self.params
        self._state = {s: _SymbolState(SMA(p.fast), SMA(p.slow)) for s in self.symbols}

    def on_bar(self, bar: Bar) -> None:
        state = self._state[bar.symbol]
        fast = state.fast.update(bar.close)
        slow = state.slow.update(bar.close)
        if fast is None or slow is None:  # fast < slow, so this is the slow average's warm-up
            self.hold(bar.symbol, reason="warming up")
            return
        diff = fast - slow
        before = state.last_nonzero_diff
        if diff or before is None:
            state.last_nonzero_diff = diff
        indicators = {"fast": fast, "slow": slow}
        if before is not None:
            size = self.params.size
            if before < 0.0 < diff and self.position(bar.symbol) <= 0:
                self.target_position(bar.symbol, size, reason="fast crossed above slow", indicators=indicators)
                return
            if before > 0.0 > diff and self.position(bar.symbol) >= 0:
                self.target_position(bar.symbol, -size, reason="fast crossed below slow",
                                     indicators=indicators)
                return
        self.hold(bar.symbol, reason="no cross", indicators=indicators)
