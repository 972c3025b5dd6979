"""End to end in a real terminal: `paperdesk run` in a detached tmux pane, read off the screen, stopped by its keys.

tmux gives the console a pseudo-terminal of a fixed size, so this runs where nothing else has one (CI, a cron job);
its own server (a socket in the test's folder) never touches the user's tmux.
"""

import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BASE_CONFIG, write_config
from tests.console.test_operator_commands import status

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed: the end-to-end console test needs it")

WIDTH, HEIGHT = 160, 45
SYMBOLS = [i["symbol"] for i in BASE_CONFIG["instruments"]]
TOP, BOTTOM = "╭┌┏╔", "╰└┗╚"
NUMBER = re.compile(r"^[+-]?[\d,]*\.?\d+$")


def tmux(socket: Path, *args: str) -> str:
    result = subprocess.run([TMUX, "-S", str(socket), *args], capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"tmux {' '.join(args)}: {result.stderr}"
    return result.stdout


def panel(pane: list[str], title: str) -> list[str] | None:
    """The text inside the bordered panel whose top border carries title (None when no such panel is on screen)."""
    for row, line in enumerate(pane):
        at = line.find(title)
        left = max((line.rfind(corner, 0, at) for corner in TOP), default=-1) if at >= 0 else -1
        if left < 0 or line[left + 1:at].strip("─━═ ") != "":
            continue
        inside = []
        for below in pane[row + 1:]:
            if len(below) <= left or below[left] in BOTTOM:
                break
            inside.append(below[left + 1:])
        return inside
    return None


def held_symbols(pane: list[str]) -> set[str]:
    """Symbols the Positions panel shows with a quantity other than zero."""
    held = set()
    for line in panel(pane, "Positions") or ():
        cells = line.split()
        numbers = [c for c in cells[1:] if NUMBER.match(c)]
        if cells and cells[0] in SYMBOLS and numbers and float(numbers[0].replace(",", "")) != 0:
            held.add(cells[0])
    return held


def open_orders_shown(pane: list[str]) -> int:
    """How many open orders the screen shows: the rows of its open-orders panel."""
    rows = panel(pane, "Open orders") or ()
    return sum(1 for line in rows if any(symbol in line for symbol in SYMBOLS))


def wait_gone(pid: int, seconds: float) -> bool:
    """Wait for a process (not ours: the tmux server's child) to end; kill it if it has not within seconds (True: it
    ended by itself)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
                return True  # exited; reaping it is its parent's business
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return False


def test_the_console_in_a_terminal_shows_positions_and_orders_and_its_keys_emergency_stop(tmp_path):
    data = copy.deepcopy(BASE_CONFIG)
    data["store"] = {"path": str(tmp_path / "desk.sqlite")}
    for strategy in data["strategies"]:  # brackets: every position keeps a stop and a target working
        strategy["exits"] = {"stop_loss_pct": 0.01, "take_profit_pct": 0.02}
    config = write_config(tmp_path / "config.toml", data)
    db = tmp_path / "desk.sqlite"
    socket = tmp_path / "tmux.sock"  # a server of its own, gone with tmp_path
    env = {**os.environ, "TERM": "xterm-256color"}
    command = f"exec {sys.executable} -m console.cli run --config {config}"  # the pane's process is paperdesk
    started = subprocess.run([TMUX, "-S", str(socket), "-f", os.devnull, "new-session", "-d", "-s", "desk",
                              "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(tmp_path), command],
                             env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr
    pid = int(tmux(socket, "display-message", "-p", "-t", "desk", "#{pane_pid}"))
    pane: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            pane = tmux(socket, "capture-pane", "-p", "-t", "desk").splitlines()
            if held_symbols(pane) and open_orders_shown(pane):
                break
            assert time.monotonic() < deadline, "no positions and open orders on screen in 120 s:\n" + "\n".join(pane)
            time.sleep(0.2)
        assert len(pane) == HEIGHT and max(len(line) for line in pane) <= WIDTH
        tmux(socket, "send-keys", "-t", "desk", "-l", "!")
        tmux(socket, "send-keys", "-t", "desk", "-l", "!")
        deadline = time.monotonic() + 60
        while (state := status(db))["risk"]["state"] != "EMERGENCY_STOPPED":
            assert time.monotonic() < deadline, f"status still says {state['risk']['state']} 60 s after the keys"
            time.sleep(0.2)
        assert [(c["command"], c["source"].split()[0], c["ok"]) for c in state["commands"]] == \
            [("emergency-stop", "console", 1)]
        deadline = time.monotonic() + 60
        while "EMERGENCY STOPPED" not in "\n".join(pane):
            assert time.monotonic() < deadline, "the screen does not say EMERGENCY STOPPED:\n" + "\n".join(pane)
            time.sleep(0.2)
            pane = tmux(socket, "capture-pane", "-p", "-t", "desk").splitlines()
    finally:
        subprocess.run([TMUX, "-S", str(socket), "kill-server"], capture_output=True, timeout=30)
        gone = wait_gone(pid, 30)
    assert gone, "paperdesk still ran 30 s after its terminal closed (killed now)"
    session = status(db)["session"]
    assert (session["status"], session["stop_reason"]) == ("STOPPED", "SIGHUP")  # a closed terminal stops it cleanly
