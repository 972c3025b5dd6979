"""Every example config in examples/ is a valid config as written (their venues are not reachable here)."""

from pathlib import Path

import pytest

from engine.config import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.toml"))


def test_there_are_examples_for_paper_and_the_testnet():
    modes = {load_config(path).venue.mode for path in EXAMPLES}
    assert {"paper", "sandbox"} <= modes


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_loads_as_written(path):
    config = load_config(path)
    assert config.venue.kind == "ccxt" and config.instruments and config.strategies
    assert config.venue.url is None  # examples reach the real exchange, never a stand-in
