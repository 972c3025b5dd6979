"""`paperdesk evaluate`: is a strategy ready to leave paper? Every session in the database that ran it.

Criteria come from [promotion]. The strategy's equity is its marked P&L (realised and open, net of
fees; engine/analytics/strategy_equity.py) at every equity mark, on the first session's starting
cash, the sessions chained in the order they ran (a session starts where the one before it ended).
Its max drawdown is measured over every mark, so an open losing position counts; Sharpe uses daily
returns of that equity over market time (periods_per_year from the config: 365 for 24/7 crypto, 252
for exchange days). Its behaviour score pools the decision matching of every session, so a long
clean session outweighs a short bad one, and at least one session must pass `validate` (every
check, unexplained differences included, with the session's own [validation]); the report says
which did and why each other did not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.analytics.returns import DAY_NS, equity_metrics
from engine.analytics.strategy_equity import strategy_equity
from engine.analytics.trades import closed_trades, trade_metrics
from engine.backtest_store import VENUE as BACKTEST
from engine.clock import utc_text
from engine.config import PromotionConfig
from engine.model.market import Bar, BookSnapshot
from engine.store.database import StoreError, connect_readonly
from engine.store.read import behaviour_scores, open_reader
from engine.store.rows import MARKET_COLUMNS, market_event
from engine.validation.matching import Matching, score
from engine.validation.records import SessionRecords, ValidationInputError, load_session
from engine.validation.validate import validate_records

BREAKER_STATES = {"PAUSED", "REDUCING", "COOLDOWN", "HALTED", "EMERGENCY_STOPPED"}


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    value: float | None
    threshold: str
    verdict: str  # pass | fail | required

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "threshold": self.threshold, "verdict": self.verdict}


@dataclass(slots=True)
class PromotionReport:
    strategy: str
    criteria: list[Criterion]
    sessions: list[dict[str, Any]]
    trend: list[dict[str, Any]]
    breakers: list[dict[str, Any]]
    restarts: int
    metrics: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.criteria if c.verdict == "fail"]

    @property
    def ready(self) -> bool:
        return not self.failed

    @property
    def recommendation(self) -> str:
        if self.failed:
            return "continue paper trading: not met: " + ", ".join(self.failed)
        if any(c.verdict == "required" for c in self.criteria):
            return "ready for manual review: every automatic criterion is met; a person signs off before real money"
        return "ready: every criterion is met"

    def as_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "ready": self.ready, "recommendation": self.recommendation,
                "failed": self.failed, "criteria": [c.as_dict() for c in self.criteria], "sessions": self.sessions,
                "score_trend": self.trend, "breakers_tripped": self.breakers, "restarts": self.restarts,
                "metrics": json_safe(self.metrics), "notes": self.notes}

    def markdown(self) -> str:
        out = [f"# Promotion report: {self.strategy}", "", f"**Recommendation: {self.recommendation}**", "",
               "| criterion | value | needs | verdict |", "|---|---|---|---|"]
        out += [f"| {c.name} | {_fmt(c.value)} | {c.threshold} | {c.verdict.upper()} |" for c in self.criteria]
        out += ["", "## Sessions", "", "| session | status | days | trades | behaviour score | restarts | validation |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {s['id']} | {s['status']} | {s['days']:.2f} | {s['trades']} | {_fmt(s['score'])} | "
                f"{s['restarts']} | {_cell(s['validation'])} |" for s in self.sessions]
        out += ["", "## Behaviour score trend (live, whole session)", ""]
        out += [f"- session {t['session']} {t['time']}: {_fmt(t['score'])}" for t in self.trend] or ["- none recorded"]
        out += ["", "## Breakers tripped", ""]
        out += [f"- session {b['session']} {b['time']}: {b['detail']}" for b in self.breakers] or ["- none"]
        out += ["", f"Restarts: {self.restarts}", "", "## Metrics", ""]
        out += [f"- {k}: {_fmt(v)}" for k, v in self.metrics.items()]
        out += [""] + [f"> {n}" for n in self.notes]
        return "\n".join(out).rstrip() + "\n"


def evaluate(path: Path, strategy: str, criteria: PromotionConfig | None = None) -> PromotionReport:
    """The promotion report for strategy over every session of path that ran it."""
    conn = open_reader(path)
    try:
        # a backtest saved in the database is no paper trading: its twin is itself, so it would always validate
        sessions = [(sid, json.loads(text), venue) for sid, text, venue in conn.execute(
            "SELECT id, config_json, venue FROM sessions ORDER BY id")]
        ran = [sid for sid, cfg, venue in sessions if strategy in {s["name"] for s in cfg.get("strategies", [])}
               and venue != BACKTEST]
        trend = [{"session": sid, "time": utc_text(r["market_ts"]), "market_ts": r["market_ts"], "score": r["score"]}
                 for sid in ran for r in behaviour_scores(conn, sid) if r["score"] is not None]
    finally:
        conn.close()
    if not ran:
        known = sorted({s["name"] for _, cfg, venue in sessions if venue != BACKTEST
                        for s in cfg.get("strategies", [])})
        raise StoreError(f"--strategy {strategy}: no session in {path} paper-traded it (a backtest saved there is not "
                         f"paper trading); strategies paper-traded there: {', '.join(known) or 'none'}")
    rows, notes, trades, breakers, validated = [], [], [], [], []
    curve: list[tuple[int, float]] = []  # the strategy's marked P&L at every equity mark
    pooled = Matching([], [], [])
    days = 0.0
    restarts = 0
    carried = 0.0  # the strategy's marked P&L at the end of the sessions before
    capital = first_ts = None
    for sid in ran:
        try:
            records = load_session(path, sid)
        except ValidationInputError as exc:
            notes.append(f"session {sid} left out: {exc}")
            continue
        criteria = criteria or records.config.promotion
        if capital is None:
            capital, first_ts = records.starting_cash, records.market_start_ns
        session_trades = [t for t in closed_trades(records.trade_fills) if t.strategy == strategy]
        pnl = strategy_equity(0.0, [f for f in records.trade_fills if f.strategy == strategy], mark_prices(records),
                              [ts for ts, _ in records.equity])
        curve += [(ts, carried + p) for ts, p in pnl]
        carried += pnl[-1][1] if pnl else 0.0
        trades += session_trades
        span = ((records.last_ts or records.market_start_ns) - records.market_start_ns) / DAY_NS
        days += span
        restarts += records.restarts
        breakers += [{"session": sid, "time": utc_text(s.market_ts), "detail": s.detail} for s in records.states
                     if s.kind in BREAKER_STATES and s.scope in ("portfolio", strategy)
                     and "(operator:" not in s.detail]
        session_score = None
        try:
            report = validate_records(records, strategy)
        except ValidationInputError as exc:  # nothing decided yet, or drift: the twin is not this session's
            verdict = f"not validated: {exc}"
        else:
            session_score = report.score.score
            m = report.matching
            assert m is not None
            pooled = Matching(pooled.pairs + m.pairs, pooled.unmatched_paper + m.unmatched_paper,
                              pooled.unmatched_twin + m.unmatched_twin)
            failed = [f"{c.name} = {c.value} (needs {c.threshold})" for c in report.checks if not c.passed]
            verdict = "validated: every check passed" if report.passed else "not validated: " + (
                "; ".join(failed) or "no entry or exit to score")
            if report.passed:
                validated.append(sid)
        rows.append({"id": sid, "status": records.status, "days": span, "trades": len(session_trades),
                     "score": session_score, "restarts": records.restarts, "validation": verdict})
    if criteria is None or capital is None or first_ts is None:
        left_out = "".join(f"\n{note}" for note in notes)  # why each session that ran it could not be used
        raise ValidationInputError(f"--strategy {strategy}: no session that ran it could be evaluated{left_out}"
                                   if left_out else f"--strategy {strategy}: no session that ran it has anything "
                                   "recorded yet")
    behaviour = score(pooled).score
    trades.sort(key=lambda t: t.closed_ts)
    equity = [(first_ts, capital)] + [(ts, capital + p) for ts, p in curve]
    metrics = equity_metrics(equity, DAY_NS, criteria.periods_per_year, criteria.risk_free_annual)
    tm = trade_metrics(trades)
    drawdown = abs(metrics["max_drawdown"])  # kept negative; abs, not negation: no "-0" when there was none
    sharpe = None if math.isnan(metrics["sharpe"]) else metrics["sharpe"]
    c = criteria
    checks = [
        Criterion("validated sessions", len(validated), ">= 1", _verdict(bool(validated))),
        Criterion("closed trades", len(trades), f">= {c.min_trades}", _verdict(len(trades) >= c.min_trades)),
        Criterion("days of paper trading", round(days, 3), f">= {c.min_days:g}", _verdict(days >= c.min_days)),
        Criterion("behaviour score", behaviour, f">= {c.min_score:g}",
                  _verdict(behaviour is not None and behaviour >= c.min_score)),
        Criterion("max drawdown (every equity mark)", drawdown, f"<= {c.max_drawdown:g}",
                  _verdict(drawdown <= c.max_drawdown)),
        Criterion("sharpe", sharpe, f">= {c.min_sharpe:g}", _verdict(sharpe is not None and sharpe >= c.min_sharpe)),
    ]
    if c.manual_review:
        checks.append(Criterion("manual review", None, "a person signs off", "required"))
    if sharpe is None:
        notes.append("Sharpe needs at least two days of returns")
    if not validated:
        notes.append(f"no session of {strategy} passed validation: " + "; ".join(
            f"session {r['id']} {r['validation']}" for r in rows))
    return PromotionReport(strategy, checks, rows, trend, breakers, restarts,
                           {**metrics, **{f"trade_{k}": v for k, v in tm.as_dict().items()}}, notes)


def mark_prices(records: SessionRecords) -> Iterator[tuple[int, str, float]]:
    """The prices the session's account marked positions at, in the order it saw them: each two-sided book's mid,
    each bar's close (a warm-up bar marks nothing; what a feed gap kept from the engine it never saw)."""
    conn = connect_readonly(records.path)
    try:
        for row in conn.execute(f"SELECT {MARKET_COLUMNS} FROM market_data WHERE session_id = ? AND seq <= ? "
                                "AND kind IN ('book', 'bar') ORDER BY seq", (records.session_id, records.last_seq)):
            event = market_event(row)
            if isinstance(event, BookSnapshot):
                if event.bids and event.asks:
                    yield event.ts, event.symbol, event.mid
            elif isinstance(event, Bar):
                yield event.end, event.symbol, event.close
    finally:
        conn.close()


def _cell(text: str) -> str:
    """text in one Markdown table cell: a refusal's lines joined, a pipe escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _verdict(ok: bool) -> str:
    return "pass" if ok else "fail"


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def json_safe(value: Any) -> Any:
    """value with NaN and infinity as None, however deeply nested (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
