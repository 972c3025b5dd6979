"""Momentum on RSI: long above `upper`, short below `lower`, keep the position in between."""

from __future__ import annotations

from pydantic import Field, model_validator

from engine.model.market import Bar
from engine.strategy.base import Strategy, StrategyParams
from engine.strategy.indicators import RSI
from engine.strategy.registry import register


class RsiMomentumParams(StrategyParams):
    period: int = Field(14, ge=2, le=100_000)
    upper: float = Field(60.0, gt=0, lt=100)
    lower: float = Field(40.0, gt=0, lt=100)
    size: float = Field(0.1, gt=0, le=1e12)

    @model_validator(mode="after")
    def _lower_below_upper(self) -> RsiMomentumParams:
        if self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be less than upper ({self.upper})")
        return self


@register
class RsiMomentum(Strategy[RsiMomentumParams]):
    kind = "rsi_momentum"
    Params = RsiMomentumParams

    def lookback(self) -> int:
        return self.params.period + 1  # period changes need period + 1 closes

    def on_start(self) -> None:
        self._rsi = {s: RSI(self.params.period) for s in self.symbols}

    def on_bar(self, bar: Bar) -> None:
        rsi = self._rsi[bar.symbol].update(bar.close)
        if rsi is None:
            self.hold(bar.symbol, reason="warming up")
            return
        p = self.params
        indicators = {"rsi": rsi}
        position = self.position(bar.symbol)
        confidence = min(1.0, abs(rsi - 50.0) / 50.0)
        if rsi > p.upper and position <= 0:
            self.target_position(bar.symbol, p.size, confidence=confidence, reason=f"RSI above {p.upper:g}",
                                 indicators=indicators)
        elif rsi < p.lower and position >= 0:
            self.target_position(bar.symbol, -p.size, confidence=confidence, reason=f"RSI below {p.lower:g}",
                                 indicators=indicators)
        else:
            self.hold(bar.symbol, reason="no new momentum", indicators=indicators)
