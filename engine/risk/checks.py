"""Pre-trade checks: every order a strategy intends passes these, in paper and backtest alike.

Each check that fails returns a Denial naming the rule, the limit and the value that broke it.
Quantities count open orders as if they filled, so resting orders cannot add up past a limit. An
order that only reduces the symbol's exposure skips the exposure rules: refusing an exit adds risk.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from engine.config import RiskConfig
from engine.model.instrument import Instrument
from engine.model.order import Denial, DenialRule, OrderSide
from engine.portfolio.returns import ReturnHistory

DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Exposure:
    """The portfolio as the checks see it: filled plus open orders, valued at marks."""

    equity: float
    cash: float
    net: dict[str, float]        # symbol -> net quantity, open orders included
    marks: dict[str, float]
    reserved_cash: float         # cash that open buy orders would spend

    def values_after(self, symbol: str, after: float, price: float) -> dict[str, float]:
        """Signed position values per symbol, at marks, with symbol's position replaced by after at price."""
        values = {s: q * self.marks.get(s, 0.0) for s, q in self.net.items()}
        values[symbol] = after * price
        return values


def is_reducing(before: float, after: float) -> bool:
    """after is no further from flat than before, on the same side (flat within float dust counts as flat)."""
    if abs(after) <= 1e-9 * max(1.0, abs(before)):
        return True
    return abs(after) <= abs(before) + 1e-12 and before * after >= 0


SUBMIT_WINDOW_NS = 1_000_000_000  # max_submit_rate counts the orders sent in one second of market time


class PreTradeChecks:
    def __init__(self, config: RiskConfig, instruments: dict[str, Instrument], history: ReturnHistory) -> None:
        self.config = config
        self.instruments = instruments
        self.history = history
        self._submits: deque[int] = deque()
        self._day = -1
        self.entries_today = 0

    def throttle(self, ts: int) -> Denial | None:
        """Submit rate over the last second of market time; counts only orders that went out."""
        rate = self.config.max_submit_rate
        if rate is None:
            return None
        window = self._last_second(ts)
        if len(window) + 1 > rate:
            return Denial(DenialRule.SUBMIT_RATE, rate, len(window) + 1,
                          f"{len(window) + 1} orders in the last second > limit {rate:g}/s")
        return None

    def _last_second(self, ts: int) -> deque[int]:
        """The orders sent in the second of market time up to ts (older ones dropped)."""
        window = self._submits
        while window and window[0] <= ts - SUBMIT_WINDOW_NS:
            window.popleft()
        return window

    def submitted(self, ts: int, entry: bool) -> None:
        self._submits.append(ts)
        # the last second only, limit or none: with no max_submit_rate it grew by every order for the whole session
        self._last_second(ts)
        if entry:
            self._roll_day(ts)
            self.entries_today += 1

    def check(self, symbol: str, side: OrderSide, qty: float, price: float, ts: int, ex: Exposure) -> Denial | None:
        """The order's own limits, then (unless it only reduces exposure) the portfolio limits."""
        c = self.config
        limit = c.max_order_qty.get(symbol)
        if limit is not None and qty > limit:
            return Denial(DenialRule.MAX_ORDER_QTY, limit, qty, f"{symbol} order of {qty:g} > limit {limit:g}")
        notional = qty * price
        if c.max_order_notional is not None and notional > c.max_order_notional:
            return Denial(DenialRule.MAX_ORDER_NOTIONAL, c.max_order_notional, notional,
                          f"{symbol} order worth {notional:.2f} > limit {c.max_order_notional:.2f}")
        before = ex.net.get(symbol, 0.0)
        after = before + side * qty
        if is_reducing(before, after):
            return None
        return (self._position(symbol, after, price) or self._exposure(symbol, after, price, ex)
                or self._counts(symbol, before, ts, ex) or self._money(symbol, side, qty, before, after, price, ex)
                or self._correlation(symbol, before, after, ex) or self._var(symbol, after, price, ex))

    def _position(self, symbol: str, after: float, price: float) -> Denial | None:
        c = self.config
        limit = c.max_position_qty.get(symbol)
        if limit is not None and abs(after) > limit:
            return Denial(DenialRule.MAX_POSITION_QTY, limit, abs(after),
                          f"{symbol} position would be {after:+g}, beyond limit {limit:g}")
        value = abs(after) * price
        if c.max_position_notional is not None and value > c.max_position_notional:
            return Denial(DenialRule.MAX_POSITION_NOTIONAL, c.max_position_notional, value,
                          f"{symbol} position would be worth {value:.2f} > limit {c.max_position_notional:.2f}")
        return None

    def _exposure(self, symbol: str, after: float, price: float, ex: Exposure) -> Denial | None:
        c = self.config
        if c.max_gross_exposure is None and c.max_net_exposure is None:
            return None
        values = ex.values_after(symbol, after, price)
        equity = max(ex.equity, 1e-9)
        gross = sum(abs(v) for v in values.values()) / equity
        if c.max_gross_exposure is not None and gross > c.max_gross_exposure:
            return Denial(DenialRule.MAX_GROSS_EXPOSURE, c.max_gross_exposure, gross,
                          f"gross exposure would be {gross:.2%} of equity > limit {c.max_gross_exposure:.2%}")
        net = abs(sum(values.values())) / equity
        if c.max_net_exposure is not None and net > c.max_net_exposure:
            return Denial(DenialRule.MAX_NET_EXPOSURE, c.max_net_exposure, net,
                          f"net exposure would be {net:.2%} of equity > limit {c.max_net_exposure:.2%}")
        return None

    def _counts(self, symbol: str, before: float, ts: int, ex: Exposure) -> Denial | None:
        c = self.config
        if c.max_open_positions is not None and before == 0.0:
            held = sum(1 for q in ex.net.values() if q) + 1
            if held > c.max_open_positions:
                return Denial(DenialRule.MAX_OPEN_POSITIONS, c.max_open_positions, held,
                              f"opening {symbol} would make {held} positions > limit {c.max_open_positions}")
        if c.max_trades_per_day is not None:
            self._roll_day(ts)
            if self.entries_today + 1 > c.max_trades_per_day:
                return Denial(DenialRule.MAX_TRADES_PER_DAY, c.max_trades_per_day, self.entries_today + 1,
                              f"entry {self.entries_today + 1} today > limit {c.max_trades_per_day}")
        return None

    def _money(self, symbol: str, side: OrderSide, qty: float, before: float, after: float, price: float,
               ex: Exposure) -> Denial | None:
        if side is OrderSide.BUY and after > 0:
            adding = min(qty, after - max(before, 0.0))
            cost = adding * price * (1.0 + self.instruments[symbol].taker_fee)
            free = ex.cash - ex.reserved_cash
            if cost > free + 1e-9:
                return Denial(DenialRule.CASH, free, cost,
                              f"buying {adding:g} {symbol} costs {cost:.2f} > free cash {free:.2f}")
        limit = self.config.max_short_exposure
        if side is OrderSide.SELL and after < 0 and limit is not None:
            values = ex.values_after(symbol, after, price)
            short = -sum(v for v in values.values() if v < 0) / max(ex.equity, 1e-9)
            if short > limit:
                return Denial(DenialRule.MARGIN, limit, short,
                              f"short exposure would be {short:.2%} of equity > margin limit {limit:.2%}")
        return None

    def _correlation(self, symbol: str, before: float, after: float, ex: Exposure) -> Denial | None:
        limit = self.config.correlation_limit
        if limit is None or before != 0.0:
            return None
        for other, qty in ex.net.items():
            if other == symbol or not qty:
                continue
            corr = self.history.correlation(symbol, other)
            if corr is not None and corr * math.copysign(1.0, after * qty) > limit:
                return Denial(DenialRule.CORRELATION, limit, corr,
                              f"{symbol} returns correlate {corr:.2f} with the {other} position (limit {limit:.2f})")
        return None

    def _var(self, symbol: str, after: float, price: float, ex: Exposure) -> Denial | None:
        c = self.config
        if c.var_limit is None:
            return None
        values = ex.values_after(symbol, after, price)
        var = self.history.var95(values, int(c.var_horizon_seconds * 1e9))
        if var is None:
            return None
        fraction = var / max(ex.equity, 1e-9)
        if fraction > c.var_limit:
            return Denial(DenialRule.VAR, c.var_limit, fraction,
                          f"95% VaR over {c.var_horizon_seconds / 3600:g} h would be {fraction:.2%} of equity "
                          f"> limit {c.var_limit:.2%}")
        return None

    def _roll_day(self, ts: int) -> None:
        day = ts // DAY_NS
        if day != self._day:
            self._day, self.entries_today = day, 0
