"""One strategy's marked equity, from its fills and the prices the engine marked positions at.

The engine keeps one account for every strategy: its equity marks are the portfolio's, and no
capital is set aside per strategy. A strategy's equity is therefore measured on the capital it
trades with (the session's starting cash, the whole account's) as

    capital + its realised P&L - its fees + its open positions' unrealised P&L at the mark price,

its positions netted per symbol from its own fills (fills carry the strategy whose order they fill,
bracket, trailing and breaker closes included). The mark price of a symbol is the one the engine's
account uses: the mid of its latest two-sided book, or the close of its latest bar; a symbol with no
price yet is valued at its entry (no unrealised P&L), as the account does. For a session that ran one
strategy this is the portfolio's own equity curve.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from engine.model.fill import Fill
from engine.model.position import Position


def strategy_equity(capital: float, fills: Iterable[Fill], prices: Iterable[tuple[int, str, float]],
                    mark_ts: Iterable[int]) -> list[tuple[int, float]]:
    """The strategy's equity at each mark time: every fill and price at or before it applied.

    fills (the strategy's only), prices (ts, symbol, price) and mark_ts are each in time order.
    """
    positions: dict[str, Position] = {}
    marks: dict[str, float] = {}
    realised_less_fees = 0.0
    pending_fills: Iterator[Fill] = iter(fills)
    pending_prices: Iterator[tuple[int, str, float]] = iter(prices)
    fill = next(pending_fills, None)
    price = next(pending_prices, None)
    out = []
    for ts in mark_ts:
        while price is not None and price[0] <= ts:
            marks[price[1]] = price[2]
            price = next(pending_prices, None)
        while fill is not None and fill.ts <= ts:
            position = positions.setdefault(fill.symbol, Position(fill.symbol))
            realised_less_fees += position.apply(fill.side * fill.qty, fill.price) - fill.fee
            fill = next(pending_fills, None)
        unrealised = sum(p.unrealised(marks.get(s, p.avg_price)) for s, p in positions.items() if p.qty)
        out.append((ts, capital + realised_less_fees + unrealised))
    return out
