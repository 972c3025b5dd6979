"""`paperdesk new-strategy` and `paperdesk check-strategy`, through the parser add_strategy_commands builds."""

import argparse
import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest

from console.strategy_commands import add_strategy_commands
from tests.conftest import BASE_CONFIG, write_config

REPO = Path(__file__).resolve().parents[2]


def paperdesk(*argv: str) -> int:
    """The command as console/cli.py runs it: parse, then call the subcommand's func."""
    parser = argparse.ArgumentParser(prog="paperdesk")
    add_strategy_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def test_new_strategy_writes_a_strategy_and_a_test_that_passes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert paperdesk("new-strategy", "breakout", "--dir", "strategies") == 0
    out = capsys.readouterr().out
    source, test = tmp_path / "strategies" / "breakout.py", tmp_path / "strategies" / "test_breakout.py"
    assert source.is_file() and test.is_file()
    assert 'kind = "strategies/breakout.py:Breakout"' in out and "check-strategy" in out
    text = source.read_text()
    assert "class Breakout(Strategy[BreakoutParams]):" in text and "Field(10, ge=1" in text
    for api in ("self.position(", "self.target_position(", "self.hold(", "SMA("):
        assert api in text

    # the generated test, run as a user would run it, from their folder with paperdesk's Python
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_new_strategy_never_overwrites_and_refuses_a_bad_name(tmp_path, capsys):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "test_mine.py").write_text("keep me")
    assert paperdesk("new-strategy", "mine", "--dir", str(folder)) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'test_mine.py'} already exists; nothing was written" in err
    assert (folder / "test_mine.py").read_text() == "keep me" and not (folder / "mine.py").exists()

    for bad in ("Mine", "2fast", "class", "test_x", "my-strategy"):
        assert paperdesk("new-strategy", bad, "--dir", str(folder)) == 2
        assert "a strategy's name starts with a letter a-z" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["test_mine.py"]


def config_with(tmp_path: Path, *strategies: dict) -> Path:
    return write_config(tmp_path / "config.toml", dict(copy.deepcopy(BASE_CONFIG), strategies=list(strategies)))


SMA = {"name": "sma_btc", "kind": "sma_crossover", "symbols": ["BTC/USDT"], "params": {"fast": 3, "slow": 8}}


def test_check_strategy_shows_params_and_decisions_of_each_strategy(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert paperdesk("new-strategy", "breakout", "--dir", "strategies") == 0
    mine = {"name": "mine", "kind": "strategies/breakout.py:Breakout", "symbols": ["ETH/USDT"],
            "params": {"fast": 4, "slow": 12}}
    path = config_with(tmp_path, SMA, mine)
    capsys.readouterr()

    assert paperdesk("check-strategy", "--config", str(path), "--bars", "120") == 0
    out = capsys.readouterr().out
    assert f"mine: {tmp_path / 'strategies' / 'breakout.py'}:Breakout -> class Breakout, loaded" in out
    assert "fast: int = 4 (default 10; >= 1 and <= 10000) bars in the fast moving average" in out
    assert "size: float = 0.01 (default 0.01; > 0 and <= 1e+09)" in out
    assert "slow: int = 8 (default 30; > 0 and <= 100000)" in out  # the built-in's, beside it
    assert out.count("ran over 120 bars of 1m of the simulated market") == 2
    counts = re.findall(r"decisions: (\d+) \(([^)]*)\)", out)
    assert [n for n, _ in counts] == ["120", "120"]
    assert all("HOLD" in c and ("LONG" in c or "SHORT" in c) for _, c in counts)
    assert re.search(r"first 5 trading decisions:\n    2024-01-01 \d\d:\d\d:00 ETH/USDT (LONG 0\.01|SHORT -0\.01): "
                     r"fast average (above|below) slow \[fast=", out)

    assert paperdesk("check-strategy", "--config", str(path), "--strategy", "mine", "--bars", "30") == 0
    out = capsys.readouterr().out
    assert "mine:" in out and "sma_btc:" not in out


FAILS_AT_BAR_5 = '''from engine.strategy.base import Strategy


class Fragile(Strategy):
    def on_start(self) -> None:
        self.seen = 0

    def on_bar(self, bar) -> None:
        self.seen += 1
        if self.seen == 5:
            raise ZeroDivisionError("no volume to divide by")
        self.hold(bar.symbol, reason="watching")
'''


def test_check_strategy_exits_1_when_a_strategy_fails_and_says_where(tmp_path, capsys):
    (tmp_path / "fragile.py").write_text(FAILS_AT_BAR_5)
    path = config_with(tmp_path, SMA, {"name": "fragile", "kind": "fragile.py:Fragile", "symbols": ["BTC/USDT"]})
    assert paperdesk("check-strategy", "--config", str(path), "--bars", "40") == 1
    out = capsys.readouterr().out
    assert f"FAILED: ZeroDivisionError: no volume to divide by (at {tmp_path / 'fragile.py'}:11)" in out
    assert "decisions: 4 (HOLD 4)" in out and "params: none" in out
    assert "sma_btc: sma_crossover" in out  # the others are still checked


def test_check_strategy_exits_2_on_a_load_or_config_error(tmp_path, capsys):
    (tmp_path / "broken.py").write_text("from engine.strategy.base import Strategy\n\nclass B(Strategy):\n"
                                        "    x = (\n")
    path = config_with(tmp_path, SMA, {"name": "broken", "kind": "broken.py:B", "symbols": ["BTC/USDT"]})
    assert paperdesk("check-strategy", "--config", str(path)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"strategies[1].kind = 'broken.py:B': {tmp_path / 'broken.py'}:4: SyntaxError:" in captured.err

    good = config_with(tmp_path, SMA)
    assert paperdesk("check-strategy", "--config", str(good), "--strategy", "nope") == 2
    assert "the config has no strategy named 'nope' (its strategies: sma_btc)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        paperdesk("check-strategy", "--config", str(good), "--bars", "0")
    assert "give a whole number of bars from 1 to 100000" in capsys.readouterr().err
