from pathlib import Path

import pytest

from engine.config import ConfigError, load_config, parse_config
from tests.conftest import BASE_CONFIG, make_config

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.toml"


def test_the_shipped_config_is_valid_and_runs_three_symbols():
    config = load_config(REPO_CONFIG)
    assert config.venue.kind == "simulated"
    assert [i.symbol for i in config.instruments] == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    assert {s.kind for s in config.strategies} == {"sma_crossover", "rsi_momentum", "bollinger_mean_reversion"}


def errors_of(**sections) -> str:
    with pytest.raises(ConfigError) as info:
        make_config(**sections)
    return str(info.value)


def test_errors_name_the_key_the_value_and_what_is_allowed():
    text = errors_of(venue={"speed": -2, "limit_fill": "optimistic"})
    assert "venue.speed = -2: Input should be greater than 0" in text
    assert "venue.limit_fill = 'optimistic': Input should be 'queue', 'trade_through' or 'touch'" in text


def test_unknown_keys_list_the_allowed_ones():
    text = errors_of(session={"starting_cahs": 5})
    assert "session.starting_cahs: unknown key; allowed keys here: starting_cash" in text


def test_strategy_problems_point_into_the_strategy():
    strategies = [dict(s) for s in BASE_CONFIG["strategies"]]
    strategies[0] = dict(strategies[0], params={"fast": 0, "slwo": 3})
    strategies[1] = dict(strategies[1], kind="rsi_momentun")
    text = errors_of(strategies=strategies)
    assert "strategies[1].kind = 'rsi_momentun': is not a known strategy; known: bollinger_mean_reversion" in text
    strategies[1] = BASE_CONFIG["strategies"][1]
    text = errors_of(strategies=strategies)
    assert "strategies[0].params.fast = 0: Input should be greater than 0" in text
    assert "strategies[0].params.slwo: unknown key; allowed keys here: fast, slow, size" in text


def test_cross_references_are_checked():
    strategies = [dict(BASE_CONFIG["strategies"][0], symbols=["DOGE/USDT"])]
    assert "'DOGE/USDT' is not an instrument; instruments are BTC/USDT, ETH/USDT, SOL/USDT" in \
        errors_of(strategies=strategies)
    twice = [BASE_CONFIG["strategies"][0], BASE_CONFIG["strategies"][0]]
    assert "name(s) sma_btc used more than once" in errors_of(strategies=twice)
    bad_timeframe = [dict(BASE_CONFIG["strategies"][0], timeframe="7x")]
    assert "timeframe '7x' is not a number" in errors_of(strategies=bad_timeframe)


def test_file_problems(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[venue\nspeed = 3\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML: .*line 1"):
        load_config(bad)
    with pytest.raises(ConfigError, match="instruments: required key is missing"):
        parse_config({})
