"""Execution realism: how paper fills compare with what the twin backtest assumed.

Slippage is measured per matched decision against the twin's fill price (the backtest's assumed
price) and against the mid when the order was sent; latency from an order's creation (the moment
the strategy decided) to its first fill, in market time. Optimism comes from the fill ledger:
fills larger than the depth displayed, limit fills on a trade printed exactly at their price,
and market orders filled whole at the mid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.validation.matching import Pair
from engine.validation.records import FillRecord, OrderRecord


def distribution(values: Sequence[float]) -> dict[str, Any]:
    """count, mean, p50, p95 and max of values (None for an empty list)."""
    if not values:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "max": None}
    a = np.asarray(values, dtype=float)
    # + 0.0 turns a -0.0 (a price a hair under its reference) into the 0.0 it means
    return {"count": int(a.size), "mean": float(a.mean()) + 0.0, "p50": float(np.percentile(a, 50)) + 0.0,
            "p95": float(np.percentile(a, 95)) + 0.0, "max": float(a.max()) + 0.0}


def _vwap(fills: Sequence[FillRecord]) -> float | None:
    qty = sum(f.qty for f in fills)
    return sum(f.qty * f.price for f in fills) / qty if qty > 0 else None


def execution_realism(pairs: Sequence[Pair], paper_orders: dict[str, OrderRecord], paper_fills: Sequence[FillRecord],
                      twin_fills: Sequence[FillRecord], decision_order_ids: Sequence[str],
                      limit_fill: str) -> dict[str, Any]:
    """The execution section of a validation report (plain values, for JSON)."""
    by_order: dict[str, list[FillRecord]] = {}
    for f in paper_fills:
        by_order.setdefault(f.client_id, []).append(f)
    twin_by_order: dict[str, list[FillRecord]] = {}
    for f in twin_fills:
        twin_by_order.setdefault(f.client_id, []).append(f)
    vs_twin = []
    for pair in pairs:
        p_id, t_id = pair.paper.order_id, pair.twin.order_id
        if p_id is None or t_id is None or p_id not in paper_orders:
            continue
        paper_price, twin_price = _vwap(by_order.get(p_id, [])), _vwap(twin_by_order.get(t_id, []))
        if paper_price is None or twin_price is None:
            continue
        sign = 1.0 if paper_orders[p_id].side == "BUY" else -1.0
        vs_twin.append((paper_price - twin_price) / twin_price * 1e4 * sign)
    decided = [paper_orders[o] for o in decision_order_ids if o in paper_orders]
    sent = [o for o in decided if o.status not in ("DENIED", "REJECTED")]
    latency_ms, vs_mid, with_fills, partial = [], [], 0, 0
    for order in sent:
        fills = by_order.get(order.client_id, [])
        if not fills:
            continue
        with_fills += 1
        latency_ms.append((fills[0].ts - order.created_ns) / 1e6)
        vs_mid += [f.slippage_bps for f in fills]
        partial += len(fills) > 1 or order.filled_qty + 1e-12 < order.qty
    filled = sum(1 for o in sent if o.status == "FILLED")
    n_fills = len(paper_fills)
    over_depth = sum(1 for f in paper_fills if f.qty > f.depth + 1e-12)
    return {
        "slippage_vs_twin_bps": distribution(vs_twin),
        "slippage_vs_mid_bps": distribution(vs_mid),
        "decision_to_fill_ms": distribution(latency_ms),
        "orders_sent": len(sent),
        "orders_refused": len(decided) - len(sent),
        "fill_rate": None if not sent else round(100.0 * filled / len(sent), 2),
        "partial_fill_share": None if not with_fills else round(100.0 * partial / with_fills, 2),
        "fills": n_fills,
        "fills_over_displayed_depth": over_depth,
        "limit_fills_at_touch": sum(1 for f in paper_fills if f.basis == "TOUCH"),
        "market_fills_at_mid": sum(1 for f in paper_fills if f.basis == "MID"),
        "limit_fill_rule": limit_fill,
        "optimism": _optimism(n_fills, over_depth, paper_fills, limit_fill),
    }


def _optimism(n_fills: int, over_depth: int, fills: Sequence[FillRecord], limit_fill: str) -> list[str]:
    """Plain sentences on how the paper fills flattered the strategy (empty when they did not)."""
    out = []
    if over_depth:
        out.append(f"{over_depth} of {n_fills} fills were larger than the depth displayed at their price")
    at_mid = sum(1 for f in fills if f.basis == "MID")
    if at_mid:
        out.append(f"{at_mid} market fills were taken whole at the mid (venue slippage off: the parity setting)")
    touch = sum(1 for f in fills if f.basis == "TOUCH")
    if touch and limit_fill == "touch":
        out.append(f"{touch} limit fills came from a trade merely touching their price (limit_fill = touch)")
    return out
