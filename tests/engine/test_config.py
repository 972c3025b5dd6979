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
    assert "strategies[0].symbols[0] = 'DOGE/USDT': is not an instrument; instruments are BTC/USDT, ETH/USDT, " \
        "SOL/USDT" in errors_of(strategies=strategies)
    twice = [BASE_CONFIG["strategies"][0], BASE_CONFIG["strategies"][0]]
    assert "strategies[1].name = 'sma_btc': used more than once (first at strategies[0].name)" in \
        errors_of(strategies=twice)
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


def test_risk_sections_name_what_is_wrong():
    import pytest

    from engine.config import ConfigError
    from tests.conftest import make_config

    with pytest.raises(ConfigError, match=r"strategies\[0\]\.phase = 4: no such \[\[phases\]\] entry"):
        make_config(strategies=[{**BASE_STRATEGY, "phase": 4}])
    with pytest.raises(ConfigError, match=r"risk\.max_position_qty\.DOGE/USDT = 1\.0: 'DOGE/USDT' is not an"):
        make_config(risk={"max_position_qty": {"DOGE/USDT": 1.0}})
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.sizing\.qty: required key is missing: "
                                          r"strategies\[0\]\.sizing\.mode 'fixed' needs qty"):
        make_config(strategies=[{**BASE_STRATEGY, "sizing": {"mode": "fixed"}}])
    with pytest.raises(ConfigError, match=r"breakers\.daily_lose: unknown key; allowed keys here: .*daily_loss"):
        make_config(breakers={"daily_lose": 0.02})
    with pytest.raises(ConfigError, match=r"strategies\[0\]\.exits\.stop_loss_pct = 1\.5"):
        make_config(strategies=[{**BASE_STRATEGY, "exits": {"stop_loss_pct": 1.5}}])
    with pytest.raises(ConfigError, match=r"breakers\.volatility_short_samples = 80: must be smaller than "
                                          r"breakers\.volatility_long_samples = 60"):
        make_config(breakers={"volatility_short_samples": 80})
    config = make_config(phases=[{"phase": 1, "risk_per_trade": 0.001, "max_exposure": 0.02}],
                         strategies=[{**BASE_STRATEGY, "phase": 1, "sizing": {"mode": "kelly"}}])
    assert config.strategies[0].phase == 1 and config.breakers.daily_loss == 0.01  # the design notes' default


def test_the_shipped_config_has_every_risk_section():
    from pathlib import Path

    from engine.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "config.toml")
    assert config.phases and config.risk.max_gross_exposure and config.breakers.drawdown == 0.03
    assert config.strategies[0].exits.stop_loss_pct and config.strategies[2].sizing.mode == "fraction"


BASE_STRATEGY = {"name": "s", "kind": "sma_crossover", "symbols": ["BTC/USDT"], "timeframe": "1m",
                 "params": {"fast": 3, "slow": 8, "size": 0.05}}
