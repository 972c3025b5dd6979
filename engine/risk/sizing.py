"""Position sizing: how big an entry is, by the strategy's configured mode, before phase caps and checks.

Sizing applies to entries only; an exit is always the quantity that closes what is held.
"""

from __future__ import annotations

from engine.config import SizingConfig
from engine.model.order import Denial, DenialRule
from engine.risk.round_trips import TradeStats


def entry_qty(config: SizingConfig, requested: float, price: float, equity: float, stop_distance: float | None,
              atr: float | None, stats: TradeStats) -> tuple[float, Denial | None]:
    """The entry's absolute quantity (not yet rounded to lots), or 0 with the reason it cannot be sized."""
    mode = config.mode
    if mode == "strategy":
        return requested, None
    if mode == "fixed":
        return float(config.qty or 0.0), None
    if price <= 0 or equity <= 0:
        return 0.0, Denial(DenialRule.SIZING, None, None, f"{mode} sizing needs a price and positive equity")
    if mode == "fraction":
        return config.fraction * equity / price, None
    if mode == "risk":
        if not stop_distance:
            return 0.0, Denial(DenialRule.SIZING, None, None,
                               "risk sizing needs a stop: pass stop_loss with the intent or set exits.stop_loss_pct")
        return config.risk * equity / stop_distance, None
    if mode == "atr":
        if not atr:
            return 0.0, Denial(DenialRule.SIZING, None, None, f"atr sizing: no ATR({config.atr_period}) yet")
        return config.risk * equity / (config.atr_multiple * atr), None
    # kelly: a fraction of the full Kelly bet from the strategy's own closed trades, capped
    full = stats.kelly() if stats.trades >= config.kelly_min_trades else None
    if full is None:
        return config.fraction * equity / price, None
    bet = min(config.kelly_fraction * full, config.kelly_cap)
    if bet <= 0:
        return 0.0, Denial(DenialRule.SIZING, 0.0, full, f"kelly: no edge after {stats.trades} trades "
                                                 f"(full Kelly {full:.3f})")
    return bet * equity / price, None
