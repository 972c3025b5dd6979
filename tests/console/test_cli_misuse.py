"""Issue 12, the command line misused: a closed pipe, commands that cannot succeed, --db values that are not a
file, and one word for an interrupted session. Real processes on real SQLite files in tmp_path."""

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from console.cli import main
from tests.conftest import BASE_CONFIG, write_config
from tests.store.helpers import query

REPO = Path(__file__).resolve().parents[2]
PHASED = copy.deepcopy(BASE_CONFIG)
PHASED["phases"] = [{"phase": 1, "risk_per_trade": 0.01, "max_exposure": 1.0},
                    {"phase": 2, "risk_per_trade": 0.02, "max_exposure": 2.0}]


def env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), **extra)


def paperdesk(*args: str, cwd: Path = REPO, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env())


def a_stopped_session(folder: Path) -> tuple[Path, Path]:
    """(config, db) of a session that ran one second and stopped; its config defines risk phases 1 and 2."""
    config = write_config(folder / "c.toml", PHASED)
    db = folder / "desk.sqlite"
    result = paperdesk("run", "--no-ui", "--duration", "1", "--config", str(config), "--db", str(db))
    assert result.returncode == 0, result.stdout + result.stderr
    return config, db


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> tuple[Path, Path]:
    return a_stopped_session(tmp_path_factory.mktemp("stopped"))


def commands(db: Path) -> list[tuple]:
    return query(db, "SELECT * FROM commands ORDER BY id")


# ---- 1. a reader that went away -----------------------------------------------------------------------------

@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["sessions"], ["sessions", "--json"],
                                  ["export", "--what", "fills"], ["audit", "verify"]], ids=" ".join)
def test_a_closed_output_pipe_ends_a_read_command_quietly(stopped, args, buffered):
    _, db = stopped
    read_end, write_end = os.pipe()
    os.close(read_end)  # `paperdesk status | head -1` once head has gone: every write meets a closed pipe
    try:
        extra = {} if not buffered else {"PYTHONUNBUFFERED": ""}
        run_env = {k: v for k, v in env(**extra).items() if v}
        proc = subprocess.run([sys.executable, "-m", "console.cli", *args, "--db", str(db)], cwd=REPO,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, env=run_env)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.stderr == ""
    assert proc.returncode == 0


@pytest.mark.parametrize("args", [["status"], ["sessions"]], ids=" ".join)
def test_head_one_reads_a_line_and_the_command_ends_quietly(stopped, args):
    _, db = stopped
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", *args, "--db", str(db)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        first = proc.stdout.readline()
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0
        err = proc.stderr.read()
    finally:
        proc.kill()
    assert first.strip()
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


# ---- 2. commands that cannot succeed are refused before they are queued ------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["phase", "--strategy", "nosuch", "--to", "1"], "--strategy nosuch: session 1 has no strategy by that name "
                                                     "(its strategies: sma_btc, rsi_eth, bb_sol)"),
    (["phase", "--strategy", "sma_btc", "--to", "7"], "--to 7: session 1 has no such risk phase (defined: 1, 2)"),
    (["halt", "--strategy", "nosuch"], "--strategy nosuch: session 1 has no strategy by that name"),
    (["pause", "--strategy", "nosuch"], "--strategy nosuch: session 1 has no strategy by that name"),
    (["resume", "--strategy", "nosuch", "--reason", "x"], "--strategy nosuch: session 1 has no strategy"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_strategy_or_phase_the_session_does_not_have_is_refused_and_nothing_is_queued(stopped, args, message):
    _, db = stopped
    before = commands(db)
    result = paperdesk(*args, "--db", str(db))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Nothing was queued" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert commands(db) == before


def test_a_session_with_no_phases_says_so(tmp_path):
    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    assert paperdesk("run", "--no-ui", "--duration", "0.5", "--config", str(config), "--db", str(db)).returncode == 0
    result = paperdesk("phase", "--db", str(db), "--strategy", "sma_btc", "--to", "1")
    assert result.returncode == 2 and "--to 1: session 1 has no such risk phase (defined: none" in result.stderr
    assert commands(db) == []
    fine = paperdesk("halt", "--db", str(db), "--strategy", "sma_btc", "--reason", "a known strategy")
    assert fine.returncode == 0 and "is queued" in fine.stdout  # what can succeed is still queued
    assert len(commands(db)) == 1


def test_an_emergency_stop_refuses_halt_pause_and_a_bare_resume_before_they_are_queued(tmp_path):
    config, db = a_stopped_session(tmp_path)
    stop = paperdesk("emergency-stop", "--db", str(db), "--reason", "drill")
    assert stop.returncode == 0 and "is queued" in stop.stdout
    # queued, not yet applied: the commands ahead of this one count
    early = paperdesk("halt", "--db", str(db))
    assert early.returncode == 1 and "EMERGENCY_STOPPED" in early.stderr and "resume --reason" in early.stderr
    assert len(commands(db)) == 1

    applied = paperdesk("run", "--no-ui", "--duration", "1", "--config", str(config), "--db", str(db))
    assert applied.returncode == 0 and "trading=EMERGENCY_STOPPED" in applied.stdout, applied.stdout
    assert query(db, "SELECT state FROM risk_state")[0][0] == "EMERGENCY_STOPPED"
    before = commands(db)
    for args, words in ((["halt"], "resume --reason"), (["pause"], "resume --reason"),
                        (["halt", "--strategy", "sma_btc"], "resume --reason"),
                        (["pause", "--strategy", "rsi_eth", "--reason", "x"], "resume --reason"),
                        (["resume"], "needs a reason"), (["resume", "--reason", "   "], "needs a reason")):
        result = paperdesk(*args, "--db", str(db))
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "session 1 is EMERGENCY_STOPPED" in result.stderr and words in result.stderr, (args, result.stderr)
        assert "Nothing was queued" in result.stderr and "Traceback" not in result.stderr
    assert commands(db) == before

    # what the engine would accept is still queued: one strategy's resume (the stop stands), a resume with a reason,
    # and after that resume a halt
    one = paperdesk("resume", "--db", str(db), "--strategy", "sma_btc")
    assert one.returncode == 0 and "is queued" in one.stdout, one.stderr
    lifted = paperdesk("resume", "--db", str(db), "--reason", "drill over")
    assert lifted.returncode == 0 and "is queued" in lifted.stdout, lifted.stderr
    halt = paperdesk("halt", "--db", str(db), "--reason", "after the drill")
    assert halt.returncode == 0 and "is queued" in halt.stdout, halt.stderr
    assert [c for (c,) in query(db, "SELECT command FROM commands WHERE handled_wall_ns IS NULL ORDER BY id")] == \
        ["resume", "resume", "halt"]


# ---- 3. --db values that are not a database file ------------------------------------------------------------

DB_COMMANDS = [["run", "--no-ui", "--duration", "1", "--config", "CONFIG"], ["status"], ["sessions"],
               ["export", "--what", "fills"], ["audit", "verify"], ["validate"], ["evaluate", "--strategy", "sma_btc"],
               ["report"], ["halt"], ["pause"], ["resume"], ["emergency-stop"],
               ["phase", "--strategy", "x", "--to", "1"]]
BAD_DBS = [("", "is not a file name"), (":memory:", "a session is kept in a file"),
           ("file:x.sqlite", "SQLite's URI form is not accepted"),
           ("file:x.sqlite?mode=rwc", "pass the plain path, e.g. --db x.sqlite")]


@pytest.mark.parametrize(("value", "message"), BAD_DBS, ids=["empty", "memory", "uri", "uri-query"])
@pytest.mark.parametrize("args", DB_COMMANDS, ids=lambda a: a[0])
def test_every_db_command_refuses_a_db_that_is_not_a_file_path(tmp_path, monkeypatch, capsys, args, value, message):
    config = write_config(tmp_path / "c.toml")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as exit_:
        main([str(config) if a == "CONFIG" else a for a in args] + ["--db", value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"--db: {value!r}" in err and message in err and "--db " in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no database, lock or WAL file anywhere


@pytest.mark.parametrize(("value", "message"), BAD_DBS[:3], ids=["empty", "memory", "uri"])
def test_run_refuses_a_db_that_is_not_a_file_path_in_a_real_process(tmp_path, value, message):
    config = write_config(tmp_path / "c.toml")
    result = paperdesk("run", "--no-ui", "--duration", "1", "--config", str(config), "--db", value, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr and result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


# ---- 4. one word for one fact -------------------------------------------------------------------------------

def test_sessions_and_status_both_call_a_killed_session_interrupted(tmp_path):
    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config),
                             "--db", str(db)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env())
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            result = paperdesk("status", "--db", str(db), "--json")
            if result.returncode == 0 and json.loads(result.stdout)["running"]:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the session never showed as running")
        listed = json.loads(paperdesk("sessions", "--db", str(db), "--json").stdout)
        assert listed[0]["status"] == "RUNNING" and listed[0]["running"] is True
        assert paperdesk("sessions", "--db", str(db)).stdout.splitlines()[1].split()[:2] == ["1", "RUNNING"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert query(db, "SELECT status FROM sessions")[0][0] == "RUNNING"  # the row cannot say otherwise after kill -9

    view = json.loads(paperdesk("status", "--db", str(db), "--json").stdout)
    assert view["running"] is False and view["state"].startswith("interrupted")
    assert paperdesk("status", "--db", str(db)).stdout.startswith("session 1: interrupted")
    listed = json.loads(paperdesk("sessions", "--db", str(db), "--json").stdout)
    assert listed[0]["status"] == "INTERRUPTED" and listed[0]["running"] is False
    assert listed[0]["stored_status"] == "RUNNING"
    text = paperdesk("sessions", "--db", str(db))
    assert text.returncode == 0 and text.stdout.splitlines()[1].split()[:2] == ["1", "INTERRUPTED"]
    assert "RUNNING" not in text.stdout


# ---- 5. output that cannot be written, values that are not numbers --------------------------------------------

def test_export_to_a_full_disk_names_standard_output_not_a_missing_out_option(stopped):
    _, db = stopped
    with open("/dev/full", "w") as full:  # every write to it fails as on a full disk (ENOSPC)
        result = subprocess.run([sys.executable, "-m", "console.cli", "export", "--what", "market_data", "--db",
                                 str(db)], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, env=env(),
                                cwd=REPO)
    assert result.returncode == 2, result.stderr
    assert "paperdesk: standard output: cannot write it (No space left on device)" in result.stderr
    assert "--out" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("cash", ["inf", "nan", "1e400", "-1", "0"])
def test_backtest_cash_is_checked_as_the_config_checks_starting_cash(tmp_path, cash):
    config = write_config(tmp_path / "c.toml")
    bars = tmp_path / "bars.csv"
    bars.write_text("ts,open,high,low,close,volume\n")
    result = paperdesk("backtest", "--config", str(config), "--data", str(bars), "--cash", cash)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "session.starting_cash" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_signal_while_waiting_for_the_answer_says_the_command_is_queued(tmp_path):
    from engine.store.database import WriterLock

    _, db = a_stopped_session(tmp_path)
    lock = WriterLock(db)
    lock.acquire()  # a writer "runs" (this test) but never answers: the command waits for its --wait
    try:
        proc = subprocess.Popen([sys.executable, "-m", "console.cli", "halt", "--db", str(db), "--reason", "test",
                                 "--wait", "30"], cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 20
        while not commands(db) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert commands(db), "the halt was never queued"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        lock.release()
    assert proc.returncode == 128 + signal.SIGINT, out + err
    assert "halt is queued (command 1) and applies when the engine next polls" in out, out
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def untouched(tmp_path_factory) -> tuple[Path, Path]:
    """A stopped session no other test writes to: no -wal beside it, which a reader would have to open for writing."""
    return a_stopped_session(tmp_path_factory.mktemp("untouched"))


@pytest.mark.parametrize("args", [["report"], ["evaluate", "--strategy", "sma_btc"],
                                  ["export", "--what", "fills"]], ids=lambda a: a[0])
def test_an_out_file_that_cannot_be_written_is_named_and_nothing_half_written_is_left(untouched, tmp_path, args):
    import resource

    _, db = untouched
    out = tmp_path / "out.txt"

    def no_room() -> None:  # a file size limit of 0 fails every write as a full disk does
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    result = subprocess.run([sys.executable, "-m", "console.cli", *args, "--db", str(db), "--out", str(out)],
                            capture_output=True, text=True, timeout=60, env=env(), cwd=REPO, preexec_fn=no_room)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"paperdesk: --out {out}: cannot write it (File too large)" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # neither the file nor a partial one
