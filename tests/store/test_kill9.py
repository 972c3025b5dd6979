"""kill -9 at random moments: every fill that was durable survives exactly once and the money adds up."""

import copy
import json
import math
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from tests.conftest import BASE_CONFIG, write_config
from tests.store.helpers import query

REPO = Path(__file__).resolve().parents[2]
KILLS = 22


def durable_fills(db: Path) -> dict[str, tuple]:
    if not db.exists():
        return {}
    try:
        rows = query(db, "SELECT fill_id, side, qty, price, fee, ts FROM fills")
    except sqlite3.OperationalError:  # killed before the schema existed
        return {}
    return {row[0]: row[1:] for row in rows}


def restarts_saved(db: Path) -> int:
    try:
        rows = query(db, "SELECT restarts FROM sessions")
    except sqlite3.OperationalError:  # killed before the schema existed
        return 0
    return rows[0][0] if rows else 0


def test_sigkill_at_random_moments_loses_no_durable_fill_and_repeats_nothing(tmp_path):
    rng = random.Random(20261121)
    data = copy.deepcopy(BASE_CONFIG)
    data["venue"]["latency_ms"] = 1000.0  # orders are in flight at some of the kills
    config = write_config(tmp_path / "c.toml", data)
    db = tmp_path / "desk.sqlite"
    command = [sys.executable, "-m", "console.cli", "run", "--no-ui", "--config", str(config), "--db", str(db)]
    seen: dict[str, tuple] = {}
    counted: list[int] = []  # the restarts saved just before each kill
    for kill in range(KILLS):
        with open(tmp_path / f"stderr-{kill}.txt", "w") as err:
            proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
            time.sleep(rng.uniform(0.3, 2.5))
            seen.update(durable_fills(db))  # what is committed now must survive the kill below
            counted.append(restarts_saved(db))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, (tmp_path / f"stderr-{kill}.txt").read_text()

    status = subprocess.run([sys.executable, "-m", "console.cli", "status", "--db", str(db), "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    view = json.loads(status.stdout)
    assert view["running"] is False and view["state"].startswith("interrupted"), view["state"]

    final = subprocess.run([*command, "--duration", "2"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert "resumed session 1" in final.stdout
    fills = durable_fills(db)
    assert len(seen) > 20, "the kills should interrupt a session that trades"
    for fill_id, row in seen.items():
        assert fills.get(fill_id) == row, fill_id

    (restarts, cash, starting_cash, status), = query(db, "SELECT restarts, cash, starting_cash, status FROM sessions")
    # a restart counts once recovery rebuilt the session (a kill during start-up or the replay counts none): the
    # count never goes back, and the final run, which resumed, counted one more
    assert counted == sorted(counted) and status == "STOPPED" and restarts >= max(counted) + 1 >= 2

    # positions and cash are exactly what the fills imply, recomputed here from the fills alone
    flows = [(-q if side == "BUY" else q) * price - fee for side, q, price, fee, _ in fills.values()]
    net = defaultdict(float)
    for symbol, side, q in query(db, "SELECT symbol, side, qty FROM fills"):
        net[symbol] += q if side == "BUY" else -q
    positions = dict(query(db, "SELECT symbol, qty FROM positions"))
    for symbol in set(net) | set(positions):
        assert math.isclose(positions.get(symbol, 0.0), net[symbol], abs_tol=1e-9), symbol
    assert math.isclose(cash, starting_cash + math.fsum(flows), rel_tol=1e-12, abs_tol=1e-6)

    # order ids never repeat: ids rise with creation time, and each order's fills add up to its filled quantity
    orders = query(db, "SELECT client_id, created_ns, filled_qty, side, symbol FROM orders ORDER BY client_id")
    created = [c for _, c, *_ in orders]
    assert created == sorted(created)
    filled = defaultdict(float)
    for client_id, q, side, symbol in query(db, "SELECT client_id, qty, side, symbol FROM fills"):
        filled[client_id] += q
        assert (side, symbol) in {(o[3], o[4]) for o in orders if o[0] == client_id}
    for client_id, _, filled_qty, _, _ in orders:
        assert math.isclose(filled[client_id], filled_qty, abs_tol=1e-9), client_id

    verify = subprocess.run([sys.executable, "-m", "console.cli", "audit", "verify", "--db", str(db)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stdout + verify.stderr
