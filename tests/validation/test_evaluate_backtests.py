"""evaluate promotes on paper trading: a backtest saved in the database (paperdesk backtest --db) is left out, or its
twin, which is itself, would count as a validated session and its market time as days of paper trading."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import write_bars, write_config

REPO = Path(__file__).resolve().parents[2]


def paperdesk(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_a_backtest_saved_in_the_database_is_not_a_validated_paper_session(tmp_path):
    config = write_config(tmp_path / "c.toml")
    db = tmp_path / "desk.sqlite"
    run = paperdesk("backtest", "--config", config, "--data", write_bars(tmp_path / "bars.csv", 1500), "--db", db)
    assert run.returncode == 0, run.stderr
    assert paperdesk("validate", "--db", db).returncode == 0  # the backtest agrees with itself
    result = paperdesk("evaluate", "--db", db, "--strategy", "sma_btc")
    assert "validated sessions | 1" not in result.stdout, result.stdout
    assert result.returncode == 2, result.stdout
    assert f"--strategy sma_btc: no session in {db} paper-traded it (a backtest saved there is not paper trading)" \
        in result.stderr, result.stderr
