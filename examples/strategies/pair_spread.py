"""Pair spread: a multi-symbol example strategy, written only against the documented API (docs/strategies.md).

It trades the spread log(first) - hedge_ratio * log(second) of its two symbols: when the spread's z-score over the
last `window` bars is stretched beyond entry_z it sells the rich leg and buys the cheap one, and it closes both legs
once the z-score is back within exit_z.

    [[strategies]]
    name = "pair_btc_eth"
    kind = "pair_spread.py:PairSpread"   # relative to the config file's folder
    symbols = ["BTC/USDT", "ETH/USDT"]
    timeframe = "1m"

Each symbol's bar arrives on its own, one after the other, so the spread of a minute is known only once both bars
ending at that minute are in. The first of the two gets a HOLD that says so; the second decides both legs (a
strategy may express an intent for any of its symbols in any callback, and every intent is recorded as a decision).
"""

from __future__ import annotations

import math
from collections import deque

from pydantic import Field, model_validator

from engine.model.market import Bar
from engine.strategy.base import Strategy, StrategyParams


class PairSpreadParams(StrategyParams):
    window: int = Field(60, ge=3, le=100_000, description="bars in the spread's mean and standard deviation")
    hedge_ratio: float = Field(1.0, gt=0, le=100, description="log-price units of the second symbol per unit of "
                                                              "the first, and its leg's notional per the first's")
    entry_z: float = Field(2.0, gt=0, le=20, description="open when the spread's z-score is beyond +-entry_z")
    exit_z: float = Field(0.5, ge=0, le=20, description="close when the z-score is back within +-exit_z")
    notional: float = Field(5_000.0, gt=0, le=1e9, description="the first leg's value, in the quote currency")

    @model_validator(mode="after")
    def _exit_inside_entry(self) -> PairSpreadParams:
        # an exit band as wide as the entry band would close a position on the bar after it opened
        if self.exit_z >= self.entry_z:
            raise ValueError(f"exit_z ({self.exit_z}) must be less than entry_z ({self.entry_z})")
        return self


class PairSpread(Strategy[PairSpreadParams]):
    kind = "pair_spread"
    Params = PairSpreadParams

    def lookback(self) -> int:
        return self.params.window

    def on_start(self) -> None:
        # raised here, the strategy is FAILED before its first bar with this message (check-strategy shows it)
        if len(self.symbols) != 2:
            raise ValueError(f"pair_spread trades exactly two symbols, e.g. symbols = ['BTC/USDT', 'ETH/USDT']; "
                             f"it has {self.symbols}")
        self._first, self._second = self.symbols
        self._spreads: deque[float] = deque(maxlen=self.params.window)
        # closes by bar end until both symbols' bars of that end are in
        self._closes: dict[int, dict[str, float]] = {}

    def on_bar(self, bar: Bar) -> None:
        if bar.timeframe != self.timeframe:
            return  # only the decision timeframe's closes make the spread
        closes = self._closes.setdefault(bar.end, {})
        closes[bar.symbol] = bar.close
        if len(closes) < 2:
            other = self._second if bar.symbol == self._first else self._first
            self.hold(bar.symbol, reason=f"waiting for {other}'s bar ending at the same time")
            return
        # this end is complete: so is every earlier one that ever will be (a symbol's bars come in order)
        for end in [e for e in self._closes if e <= bar.end]:
            del self._closes[end]
        self._decide(closes[self._first], closes[self._second])

    def _decide(self, first_close: float, second_close: float) -> None:
        p = self.params
        spread = math.log(first_close) - p.hedge_ratio * math.log(second_close)
        spreads = self._spreads
        spreads.append(spread)
        a, b = self._first, self._second
        if len(spreads) < p.window:
            for symbol in (a, b):
                self.hold(symbol, reason=f"warming up ({len(spreads)} of {p.window} spreads)")
            return
        mean = math.fsum(spreads) / len(spreads)
        std = math.sqrt(math.fsum((s - mean) ** 2 for s in spreads) / len(spreads))
        if std == 0.0:
            for symbol in (a, b):
                self.hold(symbol, reason="the spread has not moved: no z-score")
            return
        z = (spread - mean) / std
        indicators = {"z": z, "spread": spread, "mean": mean, "std": std}
        held_a, held_b = self.position(a), self.position(b)
        # long the spread: long the first leg, short the second (one leg may be missing if risk refused it)
        direction = 1 if held_a > 0 or held_b < 0 else -1 if held_a < 0 or held_b > 0 else 0
        qty_a = p.notional / first_close
        qty_b = p.hedge_ratio * p.notional / second_close
        if direction == 0 and z > p.entry_z:
            reason = f"spread z {z:.2f} above {p.entry_z:g}: sell {a}, buy {b}"
            self.target_position(a, -qty_a, reason=reason, indicators=indicators)
            self.target_position(b, qty_b, reason=reason, indicators=indicators)
        elif direction == 0 and z < -p.entry_z:
            reason = f"spread z {z:.2f} below {-p.entry_z:g}: buy {a}, sell {b}"
            self.target_position(a, qty_a, reason=reason, indicators=indicators)
            self.target_position(b, -qty_b, reason=reason, indicators=indicators)
        elif direction != 0 and direction * z >= -p.exit_z:
            reason = f"spread z {z:.2f} back within {p.exit_z:g}: close both legs"
            self.target_position(a, 0.0, reason=reason, indicators=indicators)
            self.target_position(b, 0.0, reason=reason, indicators=indicators)
        else:
            reason = "spread still stretched" if direction else f"spread z {z:.2f} within {p.entry_z:g}"
            for symbol in (a, b):
                self.hold(symbol, reason=reason, indicators=indicators)
