"""The paperdesk command as a user runs it: a real subprocess, real files, real signals."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.cli import parse_params
from tests.conftest import write_bars, write_config

REPO = Path(__file__).resolve().parents[2]


def paperdesk(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_headless_run_trades_and_ends_with_a_summary(tmp_path):
    config = write_config(tmp_path / "c.toml")
    result = paperdesk("run", "--no-ui", "--duration", "3", "--config", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[1] == "start"
    assert any(" status " in line for line in lines)
    summary = lines[-1]
    assert " summary stopped_by=duration " in summary
    fills = int(re.search(r"\bfills=(\d+)", summary).group(1))
    equity = float(re.search(r"\bequity=([0-9.]+)", summary).group(1))
    assert fills > 0 and equity > 0
    assert "\x1b" not in result.stdout  # no terminal escape codes in headless output


def test_headless_run_never_imports_textual(tmp_path):
    config = write_config(tmp_path / "c.toml")
    code = ("import sys; from console.cli import main; rc = main(['run', '--no-ui', '--duration', '1', "
            f"'--config', {str(config)!r}]); "
            "print('textual-loaded', sorted(m for m in sys.modules if m.split('.')[0] in "
            "('textual', 'textual_plotext', 'plotext'))); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "textual-loaded []" in result.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_the_headless_run_cleanly(tmp_path, sig):
    config = write_config(tmp_path / "c.toml")
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        first = proc.stdout.readline()
        assert " start " in first
        while time.monotonic() < deadline:
            if " status " in proc.stdout.readline():
                break
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"summary stopped_by={sig.name}" in out.strip().splitlines()[-1]


def test_headless_run_records_what_it_saw_for_a_backtest(tmp_path):
    config = write_config(tmp_path / "c.toml")
    recording = tmp_path / "rec.jsonl"
    run = paperdesk("run", "--no-ui", "--duration", "2", "--config", str(config), "--record", str(recording))
    assert run.returncode == 0, run.stderr
    paper_summary = run.stdout.strip().splitlines()[-1]
    replay = paperdesk("backtest", "--data", str(recording), "--config", str(config))
    assert replay.returncode == 0, replay.stderr
    last = replay.stdout.strip().splitlines()[-1]
    paper_equity = float(re.search(r"\bequity=([0-9.]+)", paper_summary).group(1))
    replay_equity = float(re.search(r"final_equity=([0-9.]+)", last).group(1))
    # zero latency in the test config: the replay trades exactly as the paper session did
    assert replay_equity == pytest.approx(paper_equity, abs=0.01)
    assert re.search(r"\bfills=(\d+)", paper_summary).group(1) == re.search(r"\bfills=(\d+)", last).group(1)


def test_backtest_on_a_bar_file(tmp_path):
    bars = write_bars(tmp_path / "bars.csv", 600)
    result = paperdesk("backtest", "--strategy", "sma_crossover", "--data", str(bars), "--param", "fast=5",
                       "--param", "slow=20", "--param", "size=0.01", "--config", str(REPO / "config.toml"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "events=600" in out and "decisions=600" in out
    assert re.search(r"orders=[1-9]\d* fills=[1-9]\d* fees=[0-9.]+ final_equity=[0-9.]+", out)


@pytest.mark.parametrize(("args", "message"), [
    (["backtest", "--strategy", "sma_crossover", "--data", "BARS", "--param", "fast=-1"],
     "--param fast=-1: Input should be greater than 0"),
    (["backtest", "--strategy", "sma_crossover", "--data", "BARS", "--param", "fsat=3"],
     "--param fsat: unknown parameter; known: fast, slow, size"),
    (["backtest", "--strategy", "sma_crossover", "--data", "BARS", "--param", "fast"], "expected KEY=VALUE"),
    (["backtest", "--strategy", "smaa", "--data", "BARS"], "unknown strategy 'smaa'"),
    (["backtest", "--strategy", "sma_crossover", "--data", "BAD"], "bad.csv:3: high 1 is below low 2"),
    (["backtest", "--strategy", "sma_crossover", "--data", "BARS", "--symbol", "XRP/USDT"],
     "--symbol 'XRP/USDT' is not an instrument"),
    (["run", "--no-ui", "--duration", "0"], "--duration 0: must be a positive number of seconds"),
    (["run", "--no-ui", "--config", "MISSING"], "no such config file"),
    (["run", "--no-ui", "--record", "EXISTING"], "the file exists; choose a new name"),
    (["run", "--no-ui", "--record", "NODIR"], "does not exist"),
    (["run", "--no-ui", "--record", "BARS"], "name the file *.jsonl"),
    (["backtest", "--data", "NOREC"], "no such file"),
])
def test_bad_input_exits_2_with_a_clear_message(tmp_path, args, message):
    bars = write_bars(tmp_path / "bars.csv", 50)
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2024-01-01T00:00:00,1,2,1,1,1\n"
                   "2024-01-01T00:01:00,1.5,1,2,1.5,1\n")
    existing = tmp_path / "old.jsonl"
    existing.write_text("keep me")
    subs = {"BARS": str(bars), "BAD": str(bad), "MISSING": str(tmp_path / "missing.toml"),
            "EXISTING": str(existing), "NODIR": str(tmp_path / "no" / "such" / "x.jsonl"),
            "NOREC": str(tmp_path / "none.jsonl")}
    result = paperdesk(*[subs.get(a, a) for a in args])
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert existing.read_text() == "keep me"


def test_parse_params_reads_toml_values():
    assert parse_params(["fast=10", "k=2.5", "name=abc", "flag=true"]) == \
        {"fast": 10, "k": 2.5, "name": "abc", "flag": True}


def test_make_targets_exist():
    makefile = (REPO / "Makefile").read_text()
    for target in ("run:", "test:", "bench:"):
        assert re.search(rf"^{target}", makefile, re.M)
    readme = (REPO / "README.md").read_text().splitlines()
    assert any("make run" in line for line in readme[:5]) and any("make test" in line for line in readme[:6])
    assert os.access(REPO / ".ci" / "run", os.X_OK)


def test_a_closed_output_pipe_stops_the_headless_run_cleanly(tmp_path):
    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config),
                             "--db", str(db)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert " start " in proc.stdout.readline()
    proc.stdout.close()  # as `paperdesk run --no-ui | head -1` does
    assert proc.wait(timeout=30) == 0
    assert "Traceback" not in proc.stderr.read()
    status = paperdesk("status", "--db", str(db))
    assert status.returncode == 0 and "STOPPED: output closed" in status.stdout
