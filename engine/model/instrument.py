"""Instruments and the venue rules an order must satisfy."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

_EPS = 1e-9


def decimals_of(step: float) -> int:
    """Number of decimal places a step such as 0.01 expresses."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def is_multiple(value: float, step: float) -> bool:
    """True when value is a whole number of steps (floats compared with a relative tolerance)."""
    ratio = value / step
    return abs(ratio - round(ratio)) <= _EPS * max(1.0, abs(ratio))


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable symbol with its price/size grid, minimums and fees (fees are fractions of notional)."""

    symbol: str
    base: str
    quote: str
    tick_size: float
    lot_size: float
    min_qty: float
    min_notional: float
    maker_fee: float
    taker_fee: float
    price_decimals: int = field(init=False)
    qty_decimals: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "price_decimals", decimals_of(self.tick_size))
        object.__setattr__(self, "qty_decimals", decimals_of(self.lot_size))

    def floor_qty(self, qty: float) -> float:
        """Largest multiple of the lot size not above qty (qty >= 0)."""
        lots = int(qty / self.lot_size + _EPS)
        return round(lots * self.lot_size, self.qty_decimals)

    def round_price(self, price: float) -> float:
        """Nearest price on the tick grid."""
        return round(round(price / self.tick_size) * self.tick_size, self.price_decimals)

    def violation(self, qty: float, price: float | None, reference_price: float | None) -> str | None:
        """The first venue rule an order of qty at price breaks, named with its values; None if it breaks none."""
        if not qty > 0:
            return f"quantity {qty} must be positive"
        if not is_multiple(qty, self.lot_size):
            return f"lot size: quantity {qty} is not a multiple of {self.lot_size} for {self.symbol}"
        if qty < self.min_qty - _EPS:
            return f"min quantity: {qty} < {self.min_qty} for {self.symbol}"
        if price is not None:
            if not price > 0:
                return f"price {price} must be positive"
            if not is_multiple(price, self.tick_size):
                return f"tick size: price {price} is not a multiple of {self.tick_size} for {self.symbol}"
        notional_price = price if price is not None else reference_price
        if notional_price is not None and qty * notional_price < self.min_notional - _EPS:
            return (f"min notional: {qty} x {notional_price} = {qty * notional_price:.8g} "
                    f"< {self.min_notional} for {self.symbol}")
        return None
