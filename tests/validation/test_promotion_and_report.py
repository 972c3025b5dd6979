"""`paperdesk evaluate` (is a strategy ready to leave paper?) and `paperdesk report` (md, json, html)."""

import asyncio
import json

import pytest

from engine.analytics.trades import closed_trades
from engine.validation.promotion import evaluate
from engine.validation.records import load_session
from tests.conftest import BASE_CONFIG, write_config
from tests.console.test_operator_commands import paperdesk
from tests.store.helpers import stepped_session
from tests.validation.helpers import venue_config

LENIENT = {"min_trades": 1, "min_days": 1.0, "min_score": 85.0, "max_drawdown": 1.0, "min_sharpe": -1000.0}


@pytest.fixture(scope="module")
def two_days(tmp_path_factory):
    """Two days of market time on the parity venue, 30 s between market updates."""
    db = tmp_path_factory.mktemp("promotion") / "desk.sqlite"
    asyncio.run(stepped_session(db, venue_config(), steps=6000, step_ns=30_000_000_000))
    return db


def test_a_strategy_meeting_every_automatic_criterion_is_ready_for_manual_review(two_days, tmp_path):
    config = write_config(tmp_path / "c.toml", dict(BASE_CONFIG, promotion=LENIENT))
    result = paperdesk("evaluate", "--db", str(two_days), "--strategy", "bb_sol", "--json", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout)
    verdicts = {c["name"]: c["verdict"] for c in out["criteria"]}
    assert verdicts == {"validated sessions": "pass", "closed trades": "pass", "days of paper trading": "pass",
                        "behaviour score": "pass", "max drawdown (every equity mark)": "pass", "sharpe": "pass",
                        "manual review": "required"}
    assert out["ready"] and out["recommendation"].startswith("ready for manual review")
    values = {c["name"]: c["value"] for c in out["criteria"]}
    records = load_session(two_days)
    assert values["closed trades"] == len([t for t in closed_trades(records.trade_fills) if t.strategy == "bb_sol"])
    assert values["behaviour score"] == 100.0 and 2.0 < values["days of paper trading"] < 2.2
    assert out["sessions"][0]["score"] == 100.0 and out["restarts"] == 0
    assert values["validated sessions"] == 1 and out["sessions"][0]["validation"] == "validated: every check passed"


def test_the_default_criteria_say_continue_and_name_each_one_not_met(two_days):
    report = evaluate(two_days, "bb_sol")  # the session's own [promotion]: 14 days, 20 trades, Sharpe 0.5
    assert not report.ready and "days of paper trading" in report.failed
    assert report.recommendation == "continue paper trading: not met: " + ", ".join(report.failed)
    text = report.markdown()
    assert "| days of paper trading |" in text and "FAIL" in text and "**Recommendation: continue" in text
    result = paperdesk("evaluate", "--db", str(two_days), "--strategy", "bb_sol")
    assert result.returncode == 1 and result.stdout == text


def test_evaluate_refuses_a_strategy_no_session_ran(two_days):
    result = paperdesk("evaluate", "--db", str(two_days), "--strategy", "nope")
    assert result.returncode == 2 and "no session in" in result.stderr and "sma_btc" in result.stderr


async def test_a_lagging_venue_shows_in_the_promotion_behaviour_score(tmp_path):
    db = tmp_path / "late.sqlite"
    await stepped_session(db, venue_config(latency_ms=90_000.0))
    report = evaluate(db, "rsi_eth")
    score = next(c for c in report.criteria if c.name == "behaviour score")
    assert score.value is not None and score.value < 100.0


def test_the_session_report_in_three_formats(two_days, tmp_path):
    as_json = paperdesk("report", "--db", str(two_days), "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["behaviour"]["score"] == 100.0 and doc["behaviour"]["unexplained"] == 0
    assert doc["returns"]["period"] == "hour" and doc["returns"]["periods"] >= 48
    assert doc["trades"]["trades"] > 0 and set(doc["attribution"]) == {"strategy", "symbol", "side", "hour"}
    assert doc["execution"]["fill_rate"] is not None
    md = paperdesk("report", "--db", str(two_days), "--format", "md")
    assert md.stdout.startswith("# paperdesk session 1") and "## behaviour" in md.stdout and "### strategy" in md.stdout
    out = tmp_path / "report.html"
    html = paperdesk("report", "--db", str(two_days), "--format", "html", "--out", str(out))
    assert html.returncode == 0 and html.stdout == ""
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<h2>behaviour</h2>" in page and "<script" not in page
    again = paperdesk("report", "--db", str(two_days), "--format", "html", "--out", str(out))
    assert again.returncode == 2 and "the file exists" in again.stderr and out.read_text() == page
