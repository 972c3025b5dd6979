"""How fast an emergency stop from another shell takes effect on a running headless session.

Usage: bench/emergency_stop.py [--runs N]
Each run starts `paperdesk run --no-ui` on the default config (speed 120, 25 ms ticks) in a fresh
database, waits until it holds positions, then runs `paperdesk emergency-stop` as a separate
process and times: the command process start to its exit (it waits for the engine's answer), and
the command start to the moment the database shows no position and no open order.
Last line: runs=N applied_median_s=X applied_max_s=X flat_median_s=X flat_max_s=X
"""

import argparse
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OPEN = "('SUBMITTED', 'ACCEPTED', 'TRIGGERED', 'PENDING_CANCEL', 'PARTIALLY_FILLED')"


def exposure(db: Path) -> tuple[int, int] | None:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            positions = conn.execute("SELECT COUNT(*) FROM positions WHERE qty != 0").fetchone()[0]
            orders = conn.execute(f"SELECT COUNT(*) FROM orders WHERE status IN {OPEN}").fetchone()[0]
            return positions, orders
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def one_run(tmp: Path, index: int) -> tuple[float, float]:
    db = tmp / f"desk-{index}.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "console.cli", "run", "--no-ui", "--db", str(db)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while (state := exposure(db)) is None or state[0] < 1:
            if time.monotonic() > deadline:
                raise SystemExit("the session took no position within 300 s")
            time.sleep(0.1)
        sent = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "console.cli", "emergency-stop", "--db", str(db),
                                 "--reason", "bench"], cwd=REPO, capture_output=True, text=True)
        applied = time.monotonic() - sent
        if result.returncode != 0:
            raise SystemExit(result.stdout + result.stderr)
        while exposure(db) != (0, 0):
            time.sleep(0.005)
        flat = time.monotonic() - sent
        print(f"run {index}: command answered in {applied:.3f} s, flat in the database after {flat:.3f} s "
              f"({result.stdout.strip()})")
        return applied, flat
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [one_run(Path(tmp), i) for i in range(args.runs)]
    applied = [a for a, _ in results]
    flat = [f for _, f in results]
    print(f"runs={args.runs} applied_median_s={statistics.median(applied):.3f} applied_max_s={max(applied):.3f} "
          f"flat_median_s={statistics.median(flat):.3f} flat_max_s={max(flat):.3f}")


if __name__ == "__main__":
    main()
