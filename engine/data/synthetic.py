"""The built-in simulated market: correlated, regime-switching prices with jumps, an L2 book and trades.

Seeded and driven by the caller's timestamps, so a given seed and sequence of steps always
produces the same market; paper sessions record what it produced for later replay.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.model.instrument import Instrument
from engine.model.market import BookSnapshot, MarketEvent, TradeTick
from engine.model.order import OrderSide

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class SyntheticSymbol:
    """How one symbol moves: start price, daily volatility, quoted spread and size per book level."""

    instrument: Instrument
    start_price: float
    daily_vol: float
    spread_bps: float
    depth: float


@dataclass(frozen=True, slots=True)
class MarketDynamics:
    """Shared behaviour: return correlation, volatility regimes and jumps."""

    correlation: float = 0.6
    high_vol_multiplier: float = 3.0
    regime_switch_per_hour: float = 2.0  # expected switches between calm and stormy per market hour
    jumps_per_day: float = 6.0  # per symbol
    jump_size: float = 0.01  # standard deviation of a jump's log return
    book_levels: int = 10


class SyntheticMarket:
    """step(ts, dt) advances every symbol by dt market seconds and returns a book and trades for each."""

    def __init__(self, symbols: list[SyntheticSymbol], dynamics: MarketDynamics, seed: int) -> None:
        if not symbols:
            raise ValueError("the simulated market needs at least one symbol")
        self.symbols = symbols
        self.dynamics = dynamics
        self.rng = np.random.default_rng(seed)
        n = len(symbols)
        corr = np.full((n, n), dynamics.correlation)
        np.fill_diagonal(corr, 1.0)
        self._chol = np.linalg.cholesky(corr)
        self._log_price = np.log([s.start_price for s in symbols])
        self._sigma = np.array([s.daily_vol / math.sqrt(SECONDS_PER_DAY) for s in symbols])
        self.stormy = False
        self.steps = 0

    def state(self) -> dict[str, Any]:
        """Everything that decides the next steps, as JSON-able values; restore() takes it back."""
        return {"rng": self.rng.bit_generator.state, "log_price": [float(x) for x in self._log_price],
                "stormy": self.stormy, "steps": self.steps}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue exactly where state() was taken (same symbols and dynamics assumed)."""
        log_price = np.array(state["log_price"], dtype=float)
        if log_price.shape != self._log_price.shape:
            raise ValueError(f"saved market state has {log_price.size} symbols, this market has "
                             f"{self._log_price.size}")
        self.rng.bit_generator.state = state["rng"]
        self._log_price = log_price
        self.stormy = bool(state["stormy"])
        self.steps = int(state["steps"])

    def prices(self) -> dict[str, float]:
        return {s.instrument.symbol: float(math.exp(lp)) for s, lp in zip(self.symbols, self._log_price,
                                                                              strict=True)}

    def step(self, ts: int, dt: float) -> list[MarketEvent]:
        """Advance dt market seconds (dt > 0) and describe the market at ts."""
        return [event for quotes in self.moves(ts, dt) for event in quotes]

    def moves(self, ts: int, dt: float) -> Iterator[list[MarketEvent]]:
        """step(), symbol by symbol: each symbol's events at ts, in the same order and from the same draws."""
        dyn = self.dynamics
        rng = self.rng
        n = len(self.symbols)
        if rng.random() < 1.0 - math.exp(-dyn.regime_switch_per_hour * dt / 3600.0):
            self.stormy = not self.stormy
        vol_mult = dyn.high_vol_multiplier if self.stormy else 1.0
        shocks = self._chol @ rng.standard_normal(n)
        sigma = self._sigma * vol_mult
        returns = sigma * math.sqrt(dt) * shocks - 0.5 * sigma * sigma * dt
        jumps = rng.random(n) < 1.0 - math.exp(-dyn.jumps_per_day * dt / SECONDS_PER_DAY)
        if jumps.any():
            returns = returns + jumps * rng.normal(0.0, dyn.jump_size, n)
        self._log_price += returns
        self.steps += 1
        for i, spec in enumerate(self.symbols):
            yield self._quote(spec, ts, float(math.exp(self._log_price[i])), float(returns[i]), vol_mult)

    def _quote(self, spec: SyntheticSymbol, ts: int, mid: float, ret: float, vol_mult: float) -> list[MarketEvent]:
        inst = spec.instrument
        rng = self.rng
        tick = inst.tick_size
        half_spread = max(tick, mid * spec.spread_bps / 1e4 * vol_mult / 2.0)
        best_bid = inst.round_price(max(tick, mid - half_spread))
        best_ask = inst.round_price(max(best_bid + tick, mid + half_spread))
        levels = self.dynamics.book_levels
        step = max(tick, inst.round_price(half_spread))
        # thinner books when stormy; each level's size varies around spec.depth
        sizes = rng.gamma(2.0, spec.depth / 2.0 / vol_mult, 2 * levels)
        bids = tuple((inst.round_price(best_bid - k * step), max(inst.lot_size, inst.floor_qty(float(sizes[k]))))
                     for k in range(levels) if best_bid - k * step > 0)
        asks = tuple((inst.round_price(best_ask + k * step),
                      max(inst.lot_size, inst.floor_qty(float(sizes[levels + k])))) for k in range(levels))
        events: list[MarketEvent] = [BookSnapshot(ts, inst.symbol, bids, asks)]
        # trades lean with the move: buyers lift the ask on up-moves, sellers hit the bid on down-moves
        n_trades = 1 + int(rng.poisson(1.0 * vol_mult))
        p_buy = 0.5 + max(-0.4, min(0.4, ret * 2000.0))
        for _ in range(n_trades):
            buy = rng.random() < p_buy
            side_levels = asks if buy else bids
            depth_index = min(len(side_levels) - 1, int(rng.geometric(0.7)) - 1)
            price = side_levels[depth_index][0]
            size = max(inst.lot_size, inst.floor_qty(float(rng.gamma(1.5, spec.depth / 3.0))))
            events.append(TradeTick(ts, inst.symbol, price, size, OrderSide.BUY if buy else OrderSide.SELL))
        return events
