"""Trend pullback: a multi-timeframe example strategy, written only against the documented API (docs/strategies.md).

The trend comes from the longer timeframe (a moving average of 5-minute closes); entries come from the decision
timeframe (a one-minute RSI that has pulled back against that trend). A position is closed when the trend it was
opened with is gone, or by the bracket the config's `exits` put on every entry (a stop loss and a take profit as
fractions of the entry price, which the engine puts on the instrument's tick grid).

    [[strategies]]
    name = "pullback_btc"
    kind = "trend_pullback.py:TrendPullback"   # relative to the config file's folder
    symbols = ["BTC/USDT"]
    timeframes = ["1m", "5m"]                   # decisions on the first (1m); the trend from the second (5m)
    exits = { stop_loss_pct = 0.01, take_profit_pct = 0.02 }

Bars that close together arrive lower timeframe first: at 10:05 the 10:04-10:05 one-minute bar comes before the
10:00-10:05 five-minute bar, so the decision at 10:05 still sees the trend as of 10:00 (in paper and in a backtest
alike). Decisions are made only on one-minute bars; a five-minute bar updates the trend and decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, model_validator

from engine.model.market import Bar
from engine.strategy.base import Strategy, StrategyParams
from engine.strategy.indicators import RSI, SMA


class TrendPullbackParams(StrategyParams):
    trend_period: int = Field(12, ge=2, le=10_000, description="bars of the trend timeframe in its moving average")
    rsi_period: int = Field(7, ge=2, le=10_000, description="bars of the decision timeframe in the RSI")
    oversold: float = Field(35.0, gt=0, lt=50, description="an RSI below this is a pullback in an uptrend")
    overbought: float = Field(65.0, gt=50, lt=100, description="an RSI above this is a pullback in a downtrend")
    size: float = Field(0.05, gt=0, le=1e9, description="position held, in units of the base currency")

    @model_validator(mode="after")
    def _symmetric_enough(self) -> TrendPullbackParams:
        # an RSI both oversold and overbought would enter long and short on the same bar
        if self.oversold >= self.overbought:
            raise ValueError(f"oversold ({self.oversold}) must be less than overbought ({self.overbought})")
        return self


@dataclass(slots=True)
class _SymbolState:
    average: SMA
    rsi: RSI
    previous: float | None = None  # the trend average at the previous trend bar: its slope
    trend: tuple[int, float] | None = None  # (+1 up, -1 down, 0 neither; the average), once the slope is known


class TrendPullback(Strategy[TrendPullbackParams]):
    kind = "trend_pullback"
    Params = TrendPullbackParams

    def lookback(self) -> int:
        # bars of each timeframe: the trend average and the one before it (its slope), and the RSI's period changes
        return max(self.params.trend_period, self.params.rsi_period) + 1

    def on_start(self) -> None:
        # raised here, the strategy is FAILED before its first bar with this message (check-strategy shows it)
        if len(self.timeframes) != 2:
            raise ValueError(f"trend_pullback needs two timeframes, the decision one first, e.g. "
                             f"timeframes = ['1m', '5m']; it has {self.timeframes}")
        self._trend_timeframe = self.timeframes[1]
        p = self.params
        # state lives on the instance, one set per symbol: never in globals, which every instance would share
        self._state = {s: _SymbolState(SMA(p.trend_period), RSI(p.rsi_period)) for s in self.symbols}

    def on_bar(self, bar: Bar) -> None:
        state = self._state[bar.symbol]
        if bar.timeframe == self._trend_timeframe:
            self._update_trend(state, bar.close)
            return  # no decision is expected on this timeframe
        rsi = state.rsi.update(bar.close)
        if rsi is None or state.trend is None:
            self.hold(bar.symbol, reason="warming up")
            return
        p = self.params
        trend, average = state.trend
        # recorded with the decision: a report (and validate's differences) can show why it was made
        indicators = {"rsi": rsi, "trend": float(trend), "trend_average": average, "close": bar.close}
        position = self.position(bar.symbol)  # this strategy's own position, filled quantity
        if position > 0 and trend <= 0:
            self.target_position(bar.symbol, 0.0, reason="uptrend over: close the long", indicators=indicators)
        elif position < 0 and trend >= 0:
            self.target_position(bar.symbol, 0.0, reason="downtrend over: close the short", indicators=indicators)
        elif position == 0 and trend > 0 and rsi < p.oversold:
            self.target_position(bar.symbol, p.size, reason=f"pullback (RSI below {p.oversold:g}) in an uptrend",
                                 indicators=indicators)
        elif position == 0 and trend < 0 and rsi > p.overbought:
            self.target_position(bar.symbol, -p.size,
                                 reason=f"pullback (RSI above {p.overbought:g}) in a downtrend",
                                 indicators=indicators)
        else:
            self.hold(bar.symbol, reason="in the trend" if position else "no pullback", indicators=indicators)

    def _update_trend(self, state: _SymbolState, close: float) -> None:
        """Up: the close above a rising average; down: below a falling one; otherwise no trend to trade."""
        average = state.average.update(close)
        before, state.previous = state.previous, average
        if average is None or before is None:
            return
        if close > average > before:
            state.trend = (1, average)
        elif close < average < before:
            state.trend = (-1, average)
        else:
            state.trend = (0, average)
