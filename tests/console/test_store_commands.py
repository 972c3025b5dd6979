"""status, sessions and export read the database while a headless session writes it."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from tests.conftest import write_config
from tests.store.helpers import query

REPO = Path(__file__).resolve().parents[2]


def paperdesk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_status_export_and_sessions_while_a_session_runs_and_after(tmp_path):
    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config),
                             "--db", str(db)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        view = None
        while time.monotonic() < deadline:
            result = paperdesk("status", "--db", str(db), "--json")
            if result.returncode == 0:
                view = json.loads(result.stdout)
                if view["last_fills"] and view["positions"] and view["session"]["equity"] is not None:
                    break
            time.sleep(0.2)
        assert view is not None and view["last_fills"], "no fills reached the database"
        assert view["running"] is True and view["state"] == "running"
        assert view["session"]["pid"] == proc.pid
        assert {"symbol", "qty", "avg_price", "mark", "unrealised"} <= set(view["positions"][0])
        assert view["saved_seconds_ago"] < 5

        text = paperdesk("status", "--db", str(db))
        assert text.returncode == 0 and text.stdout.startswith(f"session 1: running (pid {proc.pid})")
        assert "last fills:" in text.stdout and "positions:" in text.stdout

        csv = paperdesk("export", "--db", str(db), "--what", "fills")
        assert csv.returncode == 0, csv.stderr
        lines = csv.stdout.strip().splitlines()
        assert lines[0].startswith("session_id,fill_id,client_id,strategy,symbol,side,qty,price")
        assert len(lines) - 1 >= len(view["last_fills"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read()

    after = json.loads(paperdesk("status", "--db", str(db), "--json").stdout)
    assert after["running"] is False and after["state"] == "stopped"
    assert after["session"]["stop_reason"] == "SIGTERM"

    for what in ("fills", "orders", "decisions", "equity", "market_data"):
        out = tmp_path / f"{what}.parquet"
        result = paperdesk("export", "--db", str(db), "--what", what, "--format", "parquet", "--out", str(out))
        assert result.returncode == 0, result.stderr
        frame = pd.read_parquet(out)
        table = {"equity": "equity"}.get(what, what)
        assert len(frame) == query(db, f"SELECT COUNT(*) FROM {table}")[0][0] > 0, what
    csv_out = tmp_path / "decisions.csv"
    assert paperdesk("export", "--db", str(db), "--what", "decisions", "--out", str(csv_out)).returncode == 0
    assert len(pd.read_csv(csv_out)) == query(db, "SELECT COUNT(*) FROM decisions")[0][0]

    sessions = paperdesk("sessions", "--db", str(db))
    assert sessions.returncode == 0
    header, row = sessions.stdout.strip().splitlines()
    assert header.split()[:3] == ["id", "status", "started"] and row.split()[:2] == ["1", "STOPPED"]
    listed = json.loads(paperdesk("sessions", "--db", str(db), "--json").stdout)
    assert listed[0]["pnl"] == listed[0]["equity"] - listed[0]["starting_cash"]


def test_read_commands_explain_bad_requests(tmp_path):
    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    missing = paperdesk("status", "--db", str(db))
    assert missing.returncode == 2 and "no such database" in missing.stderr and not db.exists()
    assert paperdesk("run", "--no-ui", "--duration", "0.5", "--config", str(config), "--db", str(db)).returncode == 0
    no_session = paperdesk("export", "--db", str(db), "--what", "fills", "--session", "9")
    assert no_session.returncode == 2 and "--session 9: no such session; sessions are 1" in no_session.stderr
    parquet = paperdesk("export", "--db", str(db), "--what", "fills", "--format", "parquet")
    assert parquet.returncode == 2 and "needs --out FILE" in parquet.stderr
    existing = tmp_path / "there.csv"
    existing.write_text("keep me")
    clash = paperdesk("export", "--db", str(db), "--what", "fills", "--out", str(existing))
    assert clash.returncode == 2 and "the file exists" in clash.stderr and existing.read_text() == "keep me"
    nowhere = paperdesk("export", "--db", str(db), "--what", "fills", "--out", str(tmp_path / "no" / "x.csv"))
    assert nowhere.returncode == 2 and "does not exist" in nowhere.stderr and "Traceback" not in nowhere.stderr


def test_the_default_database_sits_beside_the_config(tmp_path):
    config = write_config(tmp_path / "c.toml")
    result = paperdesk("run", "--no-ui", "--duration", "0.5", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"db={tmp_path / 'paperdesk.sqlite'}" in result.stdout
    status = paperdesk("status", "--config", str(config))
    assert status.returncode == 0 and status.stdout.startswith("session 1: stopped")
