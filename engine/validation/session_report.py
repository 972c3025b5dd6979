"""`paperdesk report`: one session's performance, behaviour against its twin backtest, and execution.

Max drawdown is measured over every equity mark the session saved (open positions at their marks,
the starting cash as the first peak). Returns are the session's equity per period: hours for a
session shorter than a week of market time (a few days give too few daily returns to mean
anything), days otherwise; the period and its annualisation are stated in the report, and the
drawdown of those period ends stays beside the marked one as period_end_max_drawdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.analytics.returns import DAY_NS, equity_metrics
from engine.analytics.trades import attribution, closed_trades, trade_metrics
from engine.clock import utc_text
from engine.store.database import StoreError
from engine.validation.promotion import BREAKER_STATES, json_safe
from engine.validation.records import load_session
from engine.validation.validate import validate_records

HOUR_NS = DAY_NS // 24
MAX_LISTED = 200  # differences listed in a report; `paperdesk validate` lists them all


def session_report(path: Path, session_id: int | None = None) -> dict[str, Any]:
    """The report as nested plain values: sections of key/values, lists of lines, or tables."""
    records = load_session(path, session_id)
    config = records.config
    ppy_days = config.promotion.periods_per_year
    start = records.market_start_ns
    end = records.last_ts or start
    weekly = end - start >= 7 * DAY_NS
    period, ppy = ("day", ppy_days) if weekly else ("hour", ppy_days * 24)
    points = [(start, records.starting_cash)] + list(records.equity)
    metrics = equity_metrics(points, DAY_NS if weekly else HOUR_NS, ppy, config.promotion.risk_free_annual)
    trades = closed_trades(records.trade_fills)
    final = records.equity[-1][1] if records.equity else records.starting_cash
    doc: dict[str, Any] = {
        "title": f"paperdesk session {records.session_id}",
        "session": {"id": records.session_id, "status": records.status, "running": records.running,
                    "market from": utc_text(start), "market to": utc_text(end),
                    "market days": round((end - start) / DAY_NS, 4), "restarts": records.restarts,
                    "starting cash": records.starting_cash, "final equity": final,
                    "P&L": final - records.starting_cash, "fills": len(records.fills),
                    "decisions": len(records.decisions)},
        "returns": {"period": period, "periods per year": ppy, "risk-free (annual)": config.promotion.risk_free_annual,
                    **metrics},
        "trades": trade_metrics(trades).as_dict(),
        "attribution": attribution(trades),
        "breakers tripped": [f"{utc_text(s.market_ts)} {s.detail}" for s in records.states
                             if s.kind in BREAKER_STATES and "(operator:" not in s.detail],
        "operator commands": [f"{utc_text(c.market_ts)} {c.detail}" for c in records.commands],
    }
    try:
        report = validate_records(records)
    except StoreError as exc:
        doc["behaviour"] = {"note": str(exc)}
        return json_safe(doc)
    as_dict = report.as_dict()
    doc["behaviour"] = {"score": as_dict["score"]["score"], "passed": as_dict["passed"],
                        **{k: v for k, v in as_dict["score"].items() if k != "score"},
                        "hold agreement %": as_dict["holds"]["agreement"],
                        "differences": len(report.differences), "unexplained": as_dict["unexplained"]}
    doc["behaviour checks"] = [f"{'ok' if c.passed else 'FAIL'} {c.name} = {c.value} (needs {c.threshold})"
                               for c in report.checks]
    lines = [line for d in report.differences[:MAX_LISTED] for line in _difference(d.as_dict())]
    if len(report.differences) > MAX_LISTED:
        lines.append(f"... and {len(report.differences) - MAX_LISTED} more: paperdesk validate lists them all")
    doc["differences"] = lines
    doc["execution"] = {k: v for k, v in report.execution.items() if k != "optimism"}
    doc["optimistic fills"] = report.execution["optimism"]
    return json_safe(doc)


def _difference(d: dict[str, Any]) -> list[str]:
    def side(name: str, s: dict[str, Any] | None) -> str:
        return f"{name} {s['signal']} at {s['time']}" if s else f"{name}: no decision"
    causes = d["causes"]
    why = "unexplained" if causes == "unexplained" else "; ".join(f"[{c['kind']}] {c['text']}" for c in causes)
    return [f"{d['kind']}: {d['strategy']} {d['symbol']}: {side('paper', d['paper'])}, {side('twin', d['twin'])}"
            f" -- {why}"]
