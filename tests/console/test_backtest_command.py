"""`paperdesk backtest` as a user runs it: bars saved as a session that report, status and export read like a paper
session's; a recording or market data file of a paper session replayed with that session's own config, saying so,
and a recording holding only a session's tail said loudly. Real files in tmp_path, real subprocesses."""

import asyncio
import copy
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from engine.backtest import run_backtest
from engine.config import load_config
from engine.data.recording import RecordingOrigin, load_recording, save_recording
from engine.model.market import Bar
from engine.session import PaperSession
from engine.store.database import WriterLock
from engine.store.sessions import config_text
from tests.conftest import BASE_CONFIG, write_bars, write_config

REPO = Path(__file__).resolve().parents[2]


def paperdesk(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def summary(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", stdout.strip().splitlines()[-1]))


# ---- bars, saved as a session ----------------------------------------------------------------------------------

def test_a_csv_backtest_saved_with_db_reads_like_a_paper_session(tmp_path):
    config = write_config(tmp_path / "c.toml")
    bars = write_bars(tmp_path / "bars.csv", 1500)
    db, page = tmp_path / "out.sqlite", tmp_path / "out.html"
    run = paperdesk("backtest", "--config", config, "--data", bars, "--db", db, "--report", page)
    assert run.returncode == 0, run.stderr
    assert "\x1b" not in run.stderr + run.stdout  # no progress bar unless standard error is a terminal
    assert f"saved as session 1 in {db}: paperdesk report --db {db} --session 1" in run.stdout
    result = summary(run.stdout)
    assert int(result["fills"]) > 0

    report = paperdesk("report", "--db", db)
    assert report.returncode == 0, report.stderr
    assert "# paperdesk session 1" in report.stdout and "| status | ENDED |" in report.stdout
    assert f"| fills | {result['fills']} |" in report.stdout
    assert "| score | 100 |" in report.stdout  # its twin backtest (the ideal venue) decides alike
    again = tmp_path / "again.html"
    assert paperdesk("report", "--db", db, "--format", "html", "--out", again).returncode == 0
    assert page.read_text() == again.read_text()  # --report is the report `paperdesk report` makes

    status = paperdesk("status", "--db", db)
    assert status.returncode == 0, status.stderr
    assert f"venue: backtest of {bars}, closed" in status.stdout
    assert f"STOPPED: backtest of {bars}: finished, 1500 market events" in status.stdout
    assert f"counts: orders={result['orders']} fills={result['fills']} decisions=1500 market_events=1500" \
        in status.stdout
    row = json.loads(paperdesk("status", "--db", db, "--json").stdout)["session"]
    assert (row["venue"], row["status"]) == ("backtest", "ENDED")
    assert row["equity"] == pytest.approx(float(result["final_equity"]), abs=0.01)
    fills = paperdesk("export", "--db", db, "--what", "fills")
    assert fills.returncode == 0 and len(fills.stdout.strip().splitlines()) == int(result["fills"]) + 1
    assert paperdesk("audit", "verify", "--db", db).returncode == 0


def test_a_backtest_joins_a_database_without_ending_its_paper_session(tmp_path):
    config_path = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    asyncio.run(PaperSession(load_config(config_path), db_path=db).run(duration=1.0))
    bars = write_bars(tmp_path / "bars.csv", 300)
    lock = WriterLock(db)
    lock.acquire()  # a paper session runs on it: the backtest is refused, the database left as it is
    try:
        busy = paperdesk("backtest", "--config", config_path, "--data", bars, "--db", db)
    finally:
        lock.release()
    assert busy.returncode == 2 and "another paperdesk is running on this database" in busy.stderr
    run = paperdesk("backtest", "--config", config_path, "--data", bars, "--db", db)
    assert run.returncode == 0, run.stderr
    assert "saved as session 2" in run.stdout
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, status, venue FROM sessions ORDER BY id").fetchall()
    assert rows == [(1, "STOPPED", "simulated"), (2, "ENDED", "backtest")]  # `run` resumes session 1, as before


def test_report_without_db_keeps_no_database_and_bad_input_writes_nothing(tmp_path):
    config = write_config(tmp_path / "c.toml")
    bars = write_bars(tmp_path / "bars.csv", 200)
    md = tmp_path / "r.md"
    run = paperdesk("backtest", "--config", config, "--data", bars, "--report", md)
    assert run.returncode == 0, run.stderr
    assert md.read_text().startswith("# paperdesk session 1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars.csv", "c.toml", "r.md"]

    assert "the file exists" in paperdesk("backtest", "--config", config, "--data", bars, "--report", md).stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00,1,2,1,1,1\n"
                   "2024-01-01T00:01:00,1.5,1,2,1.5,1\n")
    failed = paperdesk("backtest", "--config", config, "--data", bad, "--db", tmp_path / "out.sqlite")
    assert failed.returncode == 2
    assert f"paperdesk: {bad}:3: high 1 is below low 2" in failed.stderr and "Traceback" not in failed.stderr
    assert not (tmp_path / "out.sqlite").exists() and failed.stdout == ""


def test_from_to_and_gaps_on_the_command_line(tmp_path):
    config = write_config(tmp_path / "c.toml")
    bars = write_bars(tmp_path / "bars.csv", 600)
    part = paperdesk("backtest", "--config", config, "--data", bars, "--from", "2024-01-01T01:00",
                     "--to", "2024-01-01T03:00")
    assert part.returncode == 0, part.stderr
    assert "events=120" in part.stdout
    bad_time = paperdesk("backtest", "--config", config, "--data", bars, "--from", "noon")
    assert bad_time.returncode == 2 and "'noon' is not an ISO 8601 date or time" in bad_time.stderr

    lines = bars.read_text().splitlines()
    gapped = tmp_path / "gapped.csv"
    gapped.write_text("\n".join(lines[:100] + lines[103:]) + "\n")  # bars 99..101 missing: a gap before line 101
    warned = paperdesk("backtest", "--config", config, "--data", gapped)
    assert warned.returncode == 0, warned.stderr
    assert f"paperdesk: warning: bars are missing from the 1m series: BTC/USDT 1 gap (3 bars); the first: " \
           f"{gapped}:101: BTC/USDT: 3 1m bars missing" in warned.stderr
    refused = paperdesk("backtest", "--config", config, "--data", gapped, "--gaps", "error")
    assert refused.returncode == 2 and f"{gapped}:101: BTC/USDT: 3 1m bars missing" in refused.stderr


# ---- a paper session's recording, with the session's own config ------------------------------------------------

def changed_config(path: Path) -> Path:
    """BASE_CONFIG with rsi_eth's thresholds moved: another result on the same data."""
    data = copy.deepcopy(BASE_CONFIG)
    data["strategies"][1]["params"].update(upper=70.0, lower=30.0)
    return write_config(path, data)


@pytest.fixture
def recorded(tmp_path):
    """A paper session on a database beside its config (the config's [store] path), recorded from its start."""
    config_path = write_config(tmp_path / "c.toml")
    recording = tmp_path / "session.jsonl"
    session = PaperSession(load_config(config_path), record_to=recording, db_path=tmp_path / "paperdesk.sqlite")
    asyncio.run(session.run(duration=2.0))
    assert len(session.engine.fills) >= 3, "no trading happened; the comparisons would be empty"
    return config_path, recording, session


def test_a_recording_is_replayed_with_its_sessions_own_config(recorded, tmp_path):
    config_path, recording, session = recorded
    changed = changed_config(tmp_path / "changed.toml")  # the same folder: the same default database
    db = tmp_path / "paperdesk.sqlite"

    own = paperdesk("backtest", "--config", changed, "--data", recording)
    assert own.returncode == 0, own.stderr
    assert f"replaying {recording} with session 1's own config (in {db}, found by its market data), not " \
           f"{changed}, which differs in (session -> given): strategies[1].params.lower: 48.0 -> 30.0; " \
           "strategies[1].params.upper: 52.0 -> 70.0. Pass --given-config" in own.stderr
    result = summary(own.stdout)
    paper = session.engine
    assert (int(result["fills"]), result["final_equity"]) == (len(paper.fills), f"{paper.account.equity():.2f}")

    same = paperdesk("backtest", "--config", config_path, "--data", recording)
    assert same.returncode == 0 and same.stderr == ""
    assert f"config: session 1's own config (in {db}, found by its market data)" in same.stdout
    assert f"the same as {config_path}" in same.stdout

    given = paperdesk("backtest", "--config", changed, "--data", recording, "--given-config")
    assert given.returncode == 0, given.stderr
    assert f"replaying {recording} with {changed}, not session 1's own config" in given.stderr
    assert "strategies[1].params.upper: 52.0 -> 70.0" in given.stderr
    assert f"config: {changed} (config " in given.stdout

    elsewhere = paperdesk("backtest", "--config", changed, "--data", recording, "--session-db",
                          tmp_path / "other.sqlite")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert f"{recording}: the recording does not say which session it is of, and no session database to look it " \
           f"up in ({tmp_path / 'other.sqlite'} does not exist): it is replayed with {changed}" in elsewhere.stderr

    # in process: the session's own config reproduces the paper session decision for decision; the changed one not
    replayed = run_backtest(load_config(changed), recording, session_db=db).engine
    assert replayed.decisions == paper.decisions
    assert run_backtest(load_config(changed), recording, session_db=db, given_config=True).engine.decisions != \
        paper.decisions


def test_a_recording_of_only_the_sessions_tail_is_said_loudly(recorded, tmp_path):
    config_path, recording, session = recorded
    db = tmp_path / "paperdesk.sqlite"
    events = list(load_recording(recording))
    tail = tmp_path / "tail.jsonl"
    cut = len(events) // 2
    save_recording(tail, events[cut:])  # what a recorder started mid-session holds
    run = paperdesk("backtest", "--config", config_path, "--data", tail)
    assert run.returncode == 0, run.stderr
    assert f"paperdesk: warning: {tail} holds only the tail of session 1 of {db}: the recording starts at the " \
           f"session's market event {cut + 1}, so the {cut} market events before it are not replayed" in run.stderr
    advice = f"paperdesk export --db {db} --session 1 --what market_data --format parquet --out " \
             f"session-1.parquet, then paperdesk backtest --data session-1.parquet --session-db {db}"
    assert advice in run.stderr

    # the advice, followed: the whole session, replayed with its own config, as the paper session traded
    whole = tmp_path / "session-1.parquet"
    exported = paperdesk("export", "--db", db, "--session", "1", "--what", "market_data", "--format", "parquet",
                         "--out", whole)
    assert exported.returncode == 0, exported.stderr
    replay = paperdesk("backtest", "--config", changed_config(tmp_path / "changed.toml"), "--data", whole,
                       "--session-db", db)
    assert replay.returncode == 0, replay.stderr
    assert "holds only the tail" not in replay.stderr and "session 1's own config" in replay.stderr
    result = summary(replay.stdout)
    assert f"events={len(events)}" in replay.stdout
    assert (int(result["fills"]), result["final_equity"]) == (len(session.engine.fills),
                                                             f"{session.engine.account.equity():.2f}")


def test_a_recording_whose_header_names_its_session_needs_no_database(recorded, tmp_path):
    config_path, recording, session = recorded
    config = load_config(config_path)
    events = list(load_recording(recording))
    elsewhere = tmp_path / "moved"
    elsewhere.mkdir()
    named = elsewhere / "named.jsonl"
    # as the recorder writes it once it names the session (see docs/backtest.md)
    save_recording(named, events, RecordingOrigin("/gone/desk.sqlite", 4, config_text(config), 1, 0, 0))
    replayed = run_backtest(load_config(changed_config(elsewhere / "changed.toml")), named)
    assert replayed.engine.decisions == session.engine.decisions
    warning, = replayed.warnings
    assert "with session 4's own config (in /gone/desk.sqlite, named by the recording's header)" in warning
    assert "strategies[1].params.upper: 52.0 -> 70.0" in warning

    tail = elsewhere / "tail.jsonl"
    save_recording(tail, events[100:], RecordingOrigin("/gone/desk.sqlite", 4, config_text(config), 101, 100, 2))
    result = run_backtest(config, tail)
    assert any(f"{tail} holds only the tail of session 4 of /gone/desk.sqlite: the recording starts at the "
               "session's market event 101, recorded after restart 2" in w for w in result.warnings)


def test_warm_up_bars_a_recording_leaves_out_do_not_make_it_a_tail(tmp_path):
    """A session's warm-up bars are saved as its first market events but never recorded: a recording from the
    session's first traded event holds all of it."""
    config = load_config(write_config(tmp_path / "c.toml"))
    frame = pd.read_csv(write_bars(tmp_path / "bars.csv", 260))
    start = pd.to_datetime(frame["timestamp"], utc=True).dt.as_unit("ns").astype("int64")
    market = pd.DataFrame({"ts": start, "symbol": "BTC/USDT", "kind": ["warmup"] * 60 + ["bar"] * 200,
                           "timeframe": "1m", **{c: frame[c] for c in ("open", "high", "low", "close", "volume")},
                           "end_ts": start + 60 * 10**9})
    market.to_csv(tmp_path / "market.csv", index=False)
    db = tmp_path / "desk.sqlite"
    saved = run_backtest(config, tmp_path / "market.csv", database=db)  # a session whose first 60 events warm up
    assert saved.session_id == 1 and saved.events == 260
    assert any("warm-up, not traded" in d.reason for d in saved.engine.decisions)

    bars = [e for e in load_recording_of(market) if not e.warmup]
    whole, tail = tmp_path / "whole.jsonl", tmp_path / "tail.jsonl"
    save_recording(whole, bars)
    save_recording(tail, bars[50:])
    replay = run_backtest(config, whole, session_db=db)
    assert not replay.warnings and any("session 1's own config" in n for n in replay.notes)
    late = run_backtest(config, tail, session_db=db)
    assert any("the recording starts at the session's market event 111, so the 50 market events before it" in w
               for w in late.warnings)


def load_recording_of(market: pd.DataFrame) -> list[Bar]:
    return [Bar(int(r.ts), r.symbol, r.timeframe, float(r.open), float(r.high), float(r.low), float(r.close),
                float(r.volume), int(r.end_ts), r.kind == "warmup") for r in market.itertuples()]
