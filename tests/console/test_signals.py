"""SIGINT, SIGTERM and SIGHUP at any moment of `paperdesk run`: real processes, real signals, a clean end.

A clean end is one of two, each with its line: once the session has written to the database, the summary
(`summary stopped_by=SIGTERM ...`, exit 0) after the database was closed; before that, `paperdesk: stopped during
start-up (SIGTERM): nothing was changed` (exit 128 + the signal's number) with the database as it was. Never a
traceback, never a hang (20 s), and the database passes `audit verify` and resumes.

A signal is sent once the process has installed its handlers (SigCgt in /proc/<pid>/status, which main does on its
first line): before that the interpreter is still starting and no program can answer it.
"""

import asyncio
import hashlib
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.session import PaperSession, StoppedBeforeStart
from engine.store.audit import verify_chain
from engine.store.database import connect_readonly
from tests.conftest import make_config, write_config
from tests.console.test_cli import REPO, paperdesk
from tests.store.helpers import query, stepped_session

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
HANG = 20.0  # seconds: a process still running this long after its signal is hung
SEED = 20261130
TRIALS = 50


@pytest.fixture(scope="module")
def long_session(tmp_path_factory) -> Path:
    """A stopped session whose resume replays ~40,000 market events (about half a second or more)."""
    db = tmp_path_factory.mktemp("long") / "long.sqlite"
    asyncio.run(stepped_session(db, make_config(), steps=3000))
    return db


@dataclass
class Ended:
    sig: signal.Signals
    code: int
    out: str
    err: str
    latency: float  # seconds from the signal to the exit

    def outcome(self) -> str:
        """'summary' or 'start-up'; AssertionError naming what is wrong otherwise."""
        text = f"exit {self.code} after {self.latency:.2f} s\nstdout: {self.out[-2000:]}\nstderr: {self.err[-2000:]}"
        assert "Traceback" not in self.out + self.err, text
        lines = self.out.strip().splitlines()
        if self.code == 0:
            assert lines and re.search(rf"(^| )summary stopped_by={self.sig.name} ", lines[-1]), text
            return "summary"
        assert self.code == 128 + self.sig, text
        assert f"paperdesk: stopped during start-up ({self.sig.name}): nothing was changed" in self.err, text
        assert not any(re.search(r"(^| )summary ", line) for line in lines), text
        return "start-up"


def start(tmp: Path, config: Path, db: Path, *extra: str, name: str = "run") -> tuple[subprocess.Popen, Path, Path]:
    """`paperdesk run --duration 30` writing to files (a pipe nobody reads could block the console's writes)."""
    out, err = tmp / f"{name}.out", tmp / f"{name}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", "--duration", "30", "--config",
                                 str(config), "--db", str(db), *extra], cwd=REPO, stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=stderr)
    return proc, out, err


def handlers_installed(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    return all(caught >> (sig - 1) & 1 for sig in (signal.SIGTERM, signal.SIGHUP))  # SIGINT is caught from birth


def wait_until(check, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"exited early with {proc.returncode}"
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.001)


def signal_and_wait(proc: subprocess.Popen, sig: signal.Signals, out: Path, err: Path) -> Ended:
    proc.send_signal(sig)
    sent = time.monotonic()
    try:
        proc.wait(timeout=HANG)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        hung = f"{sig.name}: still running {HANG:g} s later (hung); stdout: {out.read_text()[-2000:]}"
        raise AssertionError(hung) from None
    return Ended(sig, proc.returncode, out.read_text(), err.read_text(errors="replace"), time.monotonic() - sent)


def chain_intact(db: Path) -> str:
    conn = connect_readonly(db)
    try:
        report = verify_chain(conn)
    finally:
        conn.close()
    assert report.intact, report.line()
    return report.line()


def digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


def saved_fills(db: Path) -> int:
    return query(db, "SELECT COUNT(*) FROM fills")[0][0]


def committed(db: Path) -> int:
    """Rows the running session has committed (0 before its schema exists)."""
    try:
        return query(db, "SELECT COALESCE(SUM(rows_committed), 0) FROM sessions")[0][0] if db.exists() else 0
    except sqlite3.DatabaseError:
        return 0


# ---- each phase, each signal ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_during_the_imports_stops_before_anything_is_written(tmp_path, sig):
    config, db = write_config(tmp_path / "c.toml"), tmp_path / "desk.sqlite"
    proc, out, err = start(tmp_path, config, db, "--no-ui")
    wait_until(lambda: handlers_installed(proc.pid), proc)
    ended = signal_and_wait(proc, sig, out, err)
    assert ended.outcome() == "start-up"
    assert not list(tmp_path.glob("desk.sqlite*"))  # no database, lock or WAL file


def test_an_output_closed_before_the_start_ends_the_run_quietly_with_nothing_written(tmp_path):
    config, db = write_config(tmp_path / "c.toml"), tmp_path / "desk.sqlite"
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: the start line meets a broken pipe
    try:
        result = subprocess.run([sys.executable, "-m", "console.cli", "run", "--no-ui", "--duration", "30",
                                 "--config", str(config), "--db", str(db)], cwd=REPO, stdout=write,
                                stderr=subprocess.PIPE, text=True, timeout=HANG)
    finally:
        os.close(write)
    assert result.returncode == 0 and result.stderr == ""
    assert not list(tmp_path.glob("desk.sqlite*"))


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_during_a_resumes_replay_leaves_the_database_as_it_was(tmp_path, long_session, sig):
    db = tmp_path / "desk.sqlite"
    shutil.copy(long_session, db)
    before, sessions = digest(db), query(db, "SELECT id, status, restarts FROM sessions")
    config = write_config(tmp_path / "c.toml")
    proc, out, err = start(tmp_path, config, db, "--no-ui")
    wait_until(lambda: " start " in out.read_text(), proc)  # printed just before the database is opened
    time.sleep(0.1)  # into the replay of ~40,000 events, which takes several times that
    ended = signal_and_wait(proc, sig, out, err)
    assert ended.outcome() == "start-up"
    assert "resumed session" not in ended.out
    assert query(db, "SELECT id, status, restarts FROM sessions") == sessions
    assert digest(db) == before  # not a byte written
    chain_intact(db)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_while_running_ends_with_the_summary_and_more_signals_do_not_cut_the_close_short(tmp_path, sig):
    config, db = write_config(tmp_path / "c.toml"), tmp_path / "desk.sqlite"
    proc, out, err = start(tmp_path, config, db, "--no-ui")
    wait_until(lambda: " status " in out.read_text(), proc)
    proc.send_signal(sig)
    time.sleep(0.02)  # the first is handled alone (Python runs signals pending together lowest number first)
    others = [s for s in SIGNALS if s != sig]
    sent = 0
    while proc.poll() is None and sent < 1000:
        try:
            proc.send_signal(others[sent % 2])
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(0.001)
    ended = signal_and_wait(proc, sig, out, err)  # the same signal once more, or a no-op if it is gone
    assert ended.outcome() == "summary"
    summary = ended.out.strip().splitlines()[-1]
    assert "NOT SAVED" not in summary
    assert int(re.search(r" fills=(\d+)", summary).group(1)) == saved_fills(db)
    assert query(db, "SELECT status, stop_reason FROM sessions") == [("STOPPED", sig.name)]
    chain_intact(db)


async def test_a_stop_during_the_replay_ends_it_between_two_events_and_writes_nothing(tmp_path, long_session):
    db = tmp_path / "desk.sqlite"
    shutil.copy(long_session, db)
    before = digest(db)
    session = PaperSession(make_config(), db_path=db)
    opening = asyncio.create_task(session.open())
    while session.journal is None or session.journal.market_seq < 1000:  # the replay is under way
        assert not opening.done()
        await asyncio.sleep(0.001)
    session.stop("SIGTERM")
    with pytest.raises(StoppedBeforeStart, match="stopped while replaying event"):
        await asyncio.wait_for(opening, 5)
    total = query(db, "SELECT COUNT(*) FROM market_data")[0][0]
    assert session.journal.market_seq < total  # cut short, not run to the end
    assert digest(db) == before
    resumed = PaperSession(make_config(), db_path=db)  # the lock was released and the session is as it was
    await resumed.run(duration=0.2)
    assert resumed.recovered is not None and resumed.recovered.restarts == 1  # the stopped attempt did not count


@pytest.mark.parametrize(("sig", "when"), [(signal.SIGTERM, "start-up"), (signal.SIGTERM, "running"),
                                           (signal.SIGHUP, "running"), (signal.SIGINT, "running")],
                         ids=lambda v: getattr(v, "name", v))
def test_the_console_without_a_terminal_stops_cleanly(tmp_path, sig, when):
    config, db = write_config(tmp_path / "c.toml"), tmp_path / "desk.sqlite"
    proc, out, err = start(tmp_path, config, db)
    if when == "start-up":
        wait_until(lambda: handlers_installed(proc.pid), proc)
    else:
        wait_until(lambda: committed(db) > 0, proc)
    ended = signal_and_wait(proc, sig, out, err)
    assert ended.outcome() == when.replace("running", "summary")
    if when == "running":
        assert query(db, "SELECT status FROM sessions") == [("STOPPED",)]
        chain_intact(db)


# ---- the done-condition: random moments, fresh and resuming databases ----------------------------------

@dataclass
class Trial:
    number: int
    db: Path
    sig: signal.Signals
    delay: float  # seconds after the process started


def _plan(rng: random.Random, folder: Path, long_session: Path) -> list[list[Trial]]:
    """Two lanes run side by side; each moves to a new database every 5 trials, its first a copy of a long session
    (a resume with a long replay), the others new files (fresh, then resumed by the next trials)."""
    lanes: list[list[Trial]] = [[], []]
    for number in range(TRIALS):
        lane = number % 2
        index = len(lanes[lane]) // 5
        db = folder / f"lane{lane}-db{index}.sqlite"
        if index == 0:
            shutil.copy(long_session, db)
        lanes[lane].append(Trial(number, db, rng.choice(SIGNALS), round(rng.uniform(0.0, 3.0), 3)))
    return lanes


def _state(db: Path) -> tuple:
    if not db.exists():
        return ()
    return (query(db, "SELECT id, status, restarts FROM sessions ORDER BY id"), query(db, "SELECT COUNT(*) FROM audit"))


def _run_trial(trial: Trial, config: Path, folder: Path) -> str:
    before = _state(trial.db)
    proc, out, err = start(folder, config, trial.db, "--no-ui", name=f"trial{trial.number}")
    started = time.monotonic()
    wait_until(lambda: handlers_installed(proc.pid), proc)
    time.sleep(max(0.0, trial.delay - (time.monotonic() - started)))
    ended = signal_and_wait(proc, trial.sig, out, err)
    outcome = ended.outcome()
    if outcome == "start-up":
        assert _state(trial.db) == before, "stopped during start-up, yet the database changed"
    if trial.db.exists():
        chain_intact(trial.db)
        assert all(status != "RUNNING" for _, status, _ in query(trial.db, "SELECT id, status, restarts FROM "
                                                                            "sessions")), "a session left RUNNING"
    return f"{outcome} in {ended.latency:.2f} s"


def test_signals_at_random_moments_always_end_cleanly_and_leave_a_resumable_database(tmp_path, long_session):
    rng = random.Random(SEED)
    config = write_config(tmp_path / "c.toml")
    lanes = _plan(rng, tmp_path, long_session)
    log: list[str] = []

    def run_lane(trials: list[Trial]) -> None:
        for trial in trials:
            what = f"trial {trial.number}: {trial.sig.name} at {trial.delay:.3f} s on {trial.db.name}"
            try:
                log.append(f"{what}: {_run_trial(trial, config, tmp_path)}")
            except AssertionError as exc:
                log.append(f"{what}: FAILED: {exc}")
                return

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run_lane, lanes))
    failed = [line for line in log if "FAILED" in line]
    assert not failed and len(log) == TRIALS, f"seed {SEED}:\n" + "\n".join(sorted(log, key=_trial_number))
    assert {"summary", "start-up"} <= {line.split(": ")[-1].split()[0] for line in log}, "\n".join(log)

    def resume(db: Path) -> str:
        existed = db.exists() and bool(query(db, "SELECT id FROM sessions"))
        result = paperdesk("run", "--no-ui", "--duration", "1", "--config", str(config), "--db", str(db))
        assert result.returncode == 0 and "Traceback" not in result.stdout + result.stderr, result.stderr
        assert ("resumed session" if existed else "started session") in result.stdout, result.stdout
        assert not [line for line in result.stdout.splitlines() if " error " in line], result.stdout
        return chain_intact(db)

    databases = sorted({trial.db for lane in lanes for trial in lane})
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(resume, databases))


def _trial_number(line: str) -> int:
    return int(line.split()[1].rstrip(":"))
