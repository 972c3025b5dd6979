"""halt / resume / emergency-stop from another shell reach a running headless engine, and survive a restart."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import write_config
from tests.store.helpers import query

REPO = Path(__file__).resolve().parents[2]


def paperdesk(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def start(config: Path, db: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config),
                             "--db", str(db), *extra], cwd=REPO, stdout=open(out, "w"), stderr=subprocess.STDOUT)


def status(db: Path) -> dict:
    result = paperdesk("status", "--db", str(db), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_for(check, what: str, timeout: float = 60.0, every: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def open_exposure(db: Path) -> tuple[int, int]:
    """(non-flat positions, open orders) as committed, read straight from the database."""
    positions = query(db, "SELECT COUNT(*) FROM positions WHERE qty != 0")[0][0]
    orders = query(db, "SELECT COUNT(*) FROM orders WHERE status IN "
                       "('SUBMITTED', 'ACCEPTED', 'TRIGGERED', 'PENDING_CANCEL', 'PARTIALLY_FILLED')")[0][0]
    return positions, orders


def test_emergency_stop_from_another_process_flattens_within_a_second_and_latches_across_restarts(tmp_path):
    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    proc = start(config, db, tmp_path / "run1.txt")
    try:
        wait_for(lambda: db.exists() and query(db, "SELECT name FROM sqlite_master WHERE name = 'positions'")
                 and open_exposure(db)[0] >= 2, "positions in two symbols")
        sent = time.monotonic()
        result = paperdesk("emergency-stop", "--db", str(db), "--reason", "drill")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "emergency-stop applied" in result.stdout and "closing" in result.stdout
        wait_for(lambda: open_exposure(db) == (0, 0), "a flat book", timeout=10)
        flat_after = time.monotonic() - sent
        print(f"\nemergency stop: command to flat book in the database {flat_after:.3f} s ({result.stdout.strip()})")
        assert flat_after < 5.0
        view = status(db)
        assert view["risk"]["state"] == "EMERGENCY_STOPPED"
        assert view["commands"][0]["command"] == "emergency-stop" and view["commands"][0]["ok"] == 1
        again = paperdesk("emergency-stop", "--db", str(db))
        assert again.returncode == 0 and "canceled 0 open orders, closing 0 positions" in again.stdout
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    fills_before = query(db, "SELECT COUNT(*) FROM fills")[0][0]
    rerun = subprocess.run([sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config),
                            "--db", str(db), "--duration", "2"], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resumed session 1" in rerun.stdout and "trading=EMERGENCY_STOPPED" in rerun.stdout
    view = status(db)
    assert view["risk"]["state"] == "EMERGENCY_STOPPED" and view["positions"] == [] and view["open_orders"] == []
    assert query(db, "SELECT COUNT(*) FROM fills")[0][0] == fills_before  # nothing traded while latched
    denied = query(db, "SELECT COUNT(*) FROM orders WHERE status = 'DENIED' AND reason LIKE 'trading_state%'")[0][0]
    assert denied > 0, "the strategies kept deciding, and risk kept refusing"

    refused = paperdesk("resume", "--db", str(db))  # refused before it is queued: the stored state is the latch
    assert refused.returncode == 1 and "needs a reason" in refused.stderr and "Nothing was queued" in refused.stderr
    queued = paperdesk("resume", "--db", str(db), "--reason", "drill over")
    assert "queued" in queued.stdout
    again = subprocess.run([sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config),
                            "--db", str(db), "--duration", "2"], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    assert "drill over" in again.stdout
    view = status(db)
    assert view["risk"]["state"] == "ACTIVE"
    audit = paperdesk("audit", "verify", "--db", str(db))
    assert audit.returncode == 0, audit.stdout
    kinds = query(db, "SELECT payload FROM audit WHERE kind = 'command'")
    reasons = [json.loads(p)["reason"] for (p,) in kinds]
    assert reasons == ["drill", "", "drill over"]


def test_halt_and_resume_reach_the_running_engine(tmp_path):
    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    proc = start(config, db, tmp_path / "run.txt")
    try:
        wait_for(lambda: db.exists() and query(db, "SELECT name FROM sqlite_master WHERE name = 'risk_state'")
                 and query(db, "SELECT COUNT(*) FROM risk_state")[0][0], "the session's risk state")
        halted = paperdesk("halt", "--db", str(db), "--reason", "lunch")
        assert halted.returncode == 0 and "ACTIVE -> HALTED (operator: lunch)" in halted.stdout, halted.stdout
        text = paperdesk("status", "--db", str(db)).stdout
        assert "trading: HALTED (operator: lunch)" in text
        unknown = paperdesk("halt", "--db", str(db), "--strategy", "nope")  # refused before it is queued
        assert unknown.returncode == 2 and "--strategy nope: session 1 has no strategy" in unknown.stderr
        looser = paperdesk("pause", "--db", str(db))  # the engine refuses it: it would loosen the operator's halt
        assert looser.returncode == 1 and "REFUSED" in looser.stdout and "would loosen it" in looser.stdout
        resumed = paperdesk("resume", "--db", str(db), "--reason", "back")
        assert resumed.returncode == 0 and "now ACTIVE" in resumed.stdout
        queued = paperdesk("halt", "--db", str(db), "--reason", "scripted", "--wait", "0")  # queue, do not wait
        assert queued.returncode == 0 and "not waiting for the answer (--wait 0)" in queued.stdout, queued.stdout
        wait_for(lambda: status(db)["risk"]["state"] == "HALTED", "the queued halt applied", timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    log = (tmp_path / "run.txt").read_text()
    assert "trading portfolio: ACTIVE -> HALTED (operator: lunch)" in log
    assert "command 2 pause" in log and "REFUSED" in log


def test_commands_name_a_missing_database_and_a_bad_wait(tmp_path):
    missing = paperdesk("halt", "--db", str(tmp_path / "nope.sqlite"))
    assert missing.returncode == 2 and "no such database" in missing.stderr
    bad_wait = paperdesk("halt", "--db", str(tmp_path / "nope.sqlite"), "--wait", "-1")
    assert bad_wait.returncode == 2 and "--wait" in bad_wait.stderr
