"""Mean reversion on Bollinger bands: buy below the lower band, sell above the upper, exit at the middle."""

from __future__ import annotations

from pydantic import Field

from engine.model.market import Bar
from engine.strategy.base import Strategy, StrategyParams
from engine.strategy.indicators import Bollinger
from engine.strategy.registry import register


class BollingerParams(StrategyParams):
    period: int = Field(20, ge=2, le=100_000)
    k: float = Field(2.0, gt=0, le=100)
    size: float = Field(0.1, gt=0, le=1e12)


@register
class BollingerMeanReversion(Strategy[BollingerParams]):
    kind = "bollinger_mean_reversion"
    Params = BollingerParams

    def lookback(self) -> int:
        return self.params.period

    def on_start(self) -> None:
        self._bands = {s: Bollinger(self.params.period, self.params.k) for s in self.symbols}

    def on_bar(self, bar: Bar) -> None:
        bands = self._bands[bar.symbol]
        middle = bands.update(bar.close)
        upper, lower = bands.upper, bands.lower
        if middle is None or upper is None or lower is None:  # all three are set together, once the window fills
            self.hold(bar.symbol, reason="warming up")
            return
        close = bar.close
        indicators = {"middle": middle, "upper": upper, "lower": lower, "close": close}
        position = self.position(bar.symbol)
        size = self.params.size
        if close < lower and position <= 0:
            self.target_position(bar.symbol, size, reason="close below lower band", indicators=indicators)
        elif close > upper and position >= 0:
            self.target_position(bar.symbol, -size, reason="close above upper band", indicators=indicators)
        elif (position > 0 and close >= middle) or (position < 0 and close <= middle):
            self.target_position(bar.symbol, 0.0, reason="back at the middle band", indicators=indicators)
        else:
            self.hold(bar.symbol, reason="inside the bands", indicators=indicators)
