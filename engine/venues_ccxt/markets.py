"""Instruments from a ccxt exchange's market list: the tick, lot, minimums and fees each symbol trades under."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import ccxt

from engine.config import ConfigError
from engine.model.instrument import Instrument

# ccxt's precision modes (ccxt.base.decimal_to_precision); only these two describe a grid
DECIMAL_PLACES = 2
TICK_SIZE = 4


class VenueInputError(ConfigError):
    """A venue setting names something the venue (or ccxt) does not have, or asks for what paper mode refuses.

    A ConfigError, so the command line reports it as one (a message and exit 2, before anything trades)."""


async def load_instruments(exchange: Any, symbols: Iterable[str], maker_fee: float = 0.001,
                           taker_fee: float = 0.001) -> dict[str, Instrument]:
    """The instruments for symbols as the exchange lists them; maker_fee/taker_fee apply where a market has none."""
    markets = await exchange.load_markets()
    return {symbol: instrument_from_market(find_market(markets, symbol, exchange.id), exchange.precisionMode,
                                           maker_fee, taker_fee)
            for symbol in symbols}


async def list_instruments(exchange: Any, wanted: Sequence[tuple[str, Mapping[str, float]]]) -> dict[str, Instrument]:
    """The instruments for (symbol, the grid a config gives for it) as the exchange lists them: every symbol it does
    not list, and every given grid value it does not trade under, in one VenueInputError."""
    try:
        markets = await exchange.load_markets()
    except ccxt.BaseError as exc:
        raise VenueInputError(f"{exchange.id}: cannot load its market list ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:200]}); is the exchange reachable? Nothing was traded") \
            from None
    found: dict[str, Instrument] = {}
    problems: list[str] = []
    for k, (symbol, grid) in enumerate(wanted):
        try:
            instrument = instrument_from_market(find_market(markets, symbol, exchange.id), exchange.precisionMode)
        except VenueInputError as exc:
            problems.append(f"instruments[{k}]: {exc}")
            continue
        for key, value in grid.items():
            if value != getattr(instrument, key):
                problems.append(f"instruments[{k}].{key} = {value!r}: {exchange.id} trades {symbol} with "
                                f"{key} {getattr(instrument, key)!r} (leave it out to take the exchange's)")
        found[symbol] = instrument
    if problems:
        raise VenueInputError("\n".join(problems))
    return found


def find_market(markets: Mapping[str, Any], symbol: str, venue: str) -> Mapping[str, Any]:
    """The market for a unified symbol ('BTC/USDT'); an unlisted one is an error naming the closest listed ones."""
    market = markets.get(symbol)
    if market is not None:
        return market
    close = closest_symbols(symbol, markets)
    hint = f"closest listed: {', '.join(close)}" if close else f"{len(markets)} markets listed, none close"
    raise VenueInputError(f"{venue} does not list {symbol!r} ({hint})")


def closest_symbols(symbol: str, listed: Iterable[str], limit: int = 5) -> list[str]:
    """Listed symbols that differ only in case or separators first ('btcusdt' -> 'BTC/USDT'), then similar ones."""
    names = list(listed)
    key = _squash(symbol)
    same = [name for name in names if _squash(name) == key]
    similar = difflib.get_close_matches(symbol.upper(), names, n=limit, cutoff=0.6)
    return list(dict.fromkeys(same + similar))[:limit]


def instrument_from_market(market: Mapping[str, Any], precision_mode: int, maker_fee: float = 0.001,
                           taker_fee: float = 0.001) -> Instrument:
    """One ccxt market as an Instrument: its price tick, quantity step, minimum quantity and notional, and fees."""
    symbol = market["symbol"]
    if market.get("contract"):
        # an Instrument has no contract size or settlement currency, so its notional would be wrong
        raise VenueInputError(f"{symbol} is a {market.get('type')} market; paper trading through ccxt takes spot "
                              f"markets only")
    if market.get("active") is False:
        raise VenueInputError(f"{symbol} is listed but not trading (the venue marks it inactive)")
    precision, limits = market.get("precision") or {}, market.get("limits") or {}
    lot = _step(precision.get("amount"), precision_mode, "quantity step", symbol)
    min_qty = (limits.get("amount") or {}).get("min")
    min_notional = (limits.get("cost") or {}).get("min")
    maker, taker = market.get("maker"), market.get("taker")
    return Instrument(
        symbol=symbol, base=market["base"], quote=market["quote"],
        tick_size=_step(precision.get("price"), precision_mode, "price tick", symbol),
        lot_size=lot, min_qty=lot if min_qty is None else float(min_qty),
        min_notional=0.0 if min_notional is None else float(min_notional),
        maker_fee=maker_fee if maker is None else float(maker),
        taker_fee=taker_fee if taker is None else float(taker))


def _step(value: Any, precision_mode: int, what: str, symbol: str) -> float:
    """A grid step from ccxt's precision: the step itself (TICK_SIZE) or a number of decimals (DECIMAL_PLACES)."""
    if value is None:
        raise VenueInputError(f"{symbol}: the venue gives no {what}")
    if precision_mode == TICK_SIZE:
        step = float(value)
    elif precision_mode == DECIMAL_PLACES:
        step = float(Decimal(1).scaleb(-int(value)))
    else:
        raise VenueInputError(f"{symbol}: the venue states its {what} in significant digits (ccxt precision mode "
                              f"{precision_mode}), which gives no fixed grid")
    if not step > 0:
        raise VenueInputError(f"{symbol}: the venue's {what} is {value!r}, not a positive step")
    return step


def _squash(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", name.upper())
