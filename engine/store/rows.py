"""Domain values <-> database rows. Market events must round-trip exactly: recovery replays them."""

from __future__ import annotations

import json
from typing import Any

from engine.model.fill import Fill, FillBasis, Liquidity
from engine.model.market import Bar, BookSnapshot, Heartbeat, MarketEvent, TradeTick
from engine.model.order import Order, OrderSide


class RowError(ValueError):
    """A stored row that cannot be read back as what was written (the file was damaged or edited)."""


MARKET_COLUMNS = "kind, ts, symbol, price, size, side, bids, asks, timeframe, open, high, low, close, volume, end_ts"


def market_row(session_id: int, seq: int, event: MarketEvent) -> tuple[Any, ...]:
    """The row as SQLite stores it (prices as floats, whatever a feed gave): the audit chain digests it as written."""
    if type(event) is BookSnapshot:
        return (session_id, seq, event.ts, event.symbol, "book", None, None, None, _levels(event.bids),
                _levels(event.asks), None, None, None, None, None, None, None)
    if type(event) is TradeTick:
        return (session_id, seq, event.ts, event.symbol, "trade", _real(event.price), _real(event.size),
                event.aggressor.name, None, None, None, None, None, None, None, None, None)
    if type(event) is Bar:
        kind = "warmup" if event.warmup else "bar"
        return (session_id, seq, event.ts, event.symbol, kind, None, None, None, None, None, event.timeframe,
                _real(event.open), _real(event.high), _real(event.low), _real(event.close), _real(event.volume),
                event.end)
    if type(event) is Heartbeat:  # market time moved with no data: kept so a replay judges the silence the same
        return (session_id, seq, event.ts, event.symbol, "clock", None, None, None, None, None, None, None, None,
                None, None, None, None)
    raise TypeError(f"no market data row for {type(event).__name__} events")


def _real(value: float) -> float:
    # as a REAL column keeps it: a float (a feed may give an int), and no negative zero (SQLite stores -0.0 as 0.0)
    return float(value) + 0.0


def _levels(levels: tuple[tuple[float, float], ...]) -> str:
    # compact: books are most of a session's bytes
    return json.dumps(levels, separators=(",", ":"))


def market_event(row: tuple[Any, ...]) -> MarketEvent:
    """A row selected as MARKET_COLUMNS back into the event the engine saw."""
    kind, ts, symbol, price, size, side, bids, asks, timeframe, open_, high, low, close, volume, end = row
    try:
        if kind == "book":
            return BookSnapshot(ts, symbol, tuple(map(tuple, json.loads(bids))), tuple(map(tuple, json.loads(asks))))
        if kind == "trade":
            return TradeTick(ts, symbol, price, size, OrderSide[side])
        if kind == "clock":
            return Heartbeat(ts, symbol)
        if kind == "bar":
            return Bar(ts, symbol, timeframe, open_, high, low, close, volume, end)
        if kind == "warmup":
            return Bar(ts, symbol, timeframe, open_, high, low, close, volume, end, True)
    except (KeyError, TypeError, ValueError) as exc:
        raise RowError(f"a stored {kind} event at ts {ts} cannot be read back ({type(exc).__name__}: {exc})") from None
    raise RowError(f"a stored market event at ts {ts} has an unknown kind {kind!r}")


def order_row(session_id: int, order: Order, ts: int) -> tuple[Any, ...]:
    return (session_id, order.client_id, order.strategy, order.symbol, order.side.name, order.qty, order.type.value,
            order.price, order.stop_price, order.tif.value, int(order.reduce_only), order.created_ns,
            order.status.value, order.filled_qty, order.avg_fill_price, order.reason, ts)


def fill_row(session_id: int, fill: Fill) -> tuple[Any, ...]:
    return (session_id, fill.fill_id, fill.client_id, fill.strategy, fill.symbol, fill.side.name, fill.qty,
            fill.price, fill.fee, fill.liquidity.value, fill.ts, fill.basis.value, fill.depth, fill.latency_ns,
            fill.mid_at_decision, fill.slippage_bps)


FILL_COLUMNS = ("fill_id, client_id, strategy, symbol, side, qty, price, fee, liquidity, ts, basis, depth, latency_ns, "
                "mid_at_decision, slippage_bps")


def fill_from_row(row: tuple[Any, ...]) -> Fill:
    """A row selected as FILL_COLUMNS back into the Fill the engine made."""
    fill_id, client_id, strategy, symbol, side, qty, price, fee, liquidity, ts, basis, depth, latency, mid, slip = row
    try:
        return Fill(fill_id, client_id, strategy, symbol, OrderSide[side], qty, price, fee, Liquidity(liquidity), ts,
                    FillBasis(basis), depth, latency, mid, slip)
    except (KeyError, ValueError) as exc:
        raise RowError(f"stored fill {fill_id} cannot be read back ({type(exc).__name__}: {exc})") from None


def canonical_json(value: Any) -> str:
    """One spelling per value, so hashes of it are stable."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
