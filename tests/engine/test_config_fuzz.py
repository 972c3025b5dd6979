"""Hostile configs: every problem is reported by key before anything runs, and nothing but ConfigError is raised."""

from __future__ import annotations

import copy
import json
import math
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from engine.config import AppConfig, ConfigError, StrategyConfig, key_path, load_config, parse_config
from engine.strategy.registry import strategy_class
from tests.conftest import Raw, toml_text
from tests.console.test_cli import paperdesk

SHIPPED = Path(__file__).resolve().parents[2] / "config.toml"
DEFAULT: dict[str, Any] = tomllib.loads(SHIPPED.read_text())


def with_values(changes: dict[tuple[Any, ...], Any]) -> dict[str, Any]:
    """The shipped config with each key path set to its value (tables made on the way)."""
    data = copy.deepcopy(DEFAULT)
    for loc, value in changes.items():
        node: Any = data
        for part in loc[:-1]:
            node = node[part] if isinstance(part, int) else node.setdefault(part, {})
        node[loc[-1]] = value
    return data


def load(path: Path, changes: dict[tuple[Any, ...], Any]) -> AppConfig | str:
    """The config through TOML text and load_config: the AppConfig, or the ConfigError's text."""
    path.write_text(toml_text(with_values(changes)), encoding="utf-8")
    try:
        return load_config(path)
    except ConfigError as exc:
        return str(exc)


def leaves(model: type[BaseModel], data: Any, loc: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Key paths of every non-table field of the schema, into the [[tables]] data has, strategy params included."""
    out: list[tuple[Any, ...]] = []
    for name, field in model.model_fields.items():
        here = (*loc, name)
        value = data.get(name) if isinstance(data, dict) else None
        args = typing.get_args(field.annotation)
        inner = args[0] if args else field.annotation
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            out += leaves(field.annotation, value or {}, here)
        elif isinstance(inner, type) and issubclass(inner, BaseModel) and value:
            for i, item in enumerate(value):
                out += leaves(inner, item, (*here, i))
        else:
            out.append(here)
            if model is StrategyConfig and name == "params":
                out += [(*here, p) for p in strategy_class(data["kind"]).Params.model_fields]
    return out


LEAVES = leaves(AppConfig, DEFAULT)

HOSTILE_TEXT = ["nan", "inf", "-inf", "+inf", "1e400", "-1e400", "1e300", "-1e300", "5e-324", "0", "1", "-1", "3.0",
                "0.5", "4294967296", "99999999999999999999999999", "-99999999999999999999999999", "true", "false",
                '""', '"x"', '"é/ü"', '"BTC/USDТ"', '"BTC/USDT\\n"', '"1.0"', '"true"', "[]", "[1, 2]",
                '["BTC/USDT", "nan"]', "[nan]", "{}", "{ a = 1 }", "{ a = nan }", "1979-05-27", "07:32:00",
                "[[1], [2]]", '"' + "A" * 10_000 + '"', '"' + "é" * 10_000 + '"']
HOSTILE = st.one_of(st.sampled_from([Raw(t) for t in HOSTILE_TEXT]),
                    st.integers(-(2**80), 2**80).map(lambda n: Raw(str(n))),
                    st.floats().map(lambda x: Raw(repr(x))))


def names(line: str, loc: tuple[Any, ...]) -> bool:
    """Whether a problem line names the key, or is a rule over its table that names the key's field."""
    return key_path(loc) in line or (f"{key_path(loc[:-1])}: " in line and str(loc[-1]) in line)


def depends_on(loc: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """Keys a key's checks need to have passed first: a strategy's params need its kind, and a rule over the
    whole params table (fast < slow) runs once every parameter passed."""
    if len(loc) == 4 and loc[2] == "params":
        return [loc[:2] + ("kind",), *[leaf for leaf in LEAVES if leaf[:3] == loc[:3] and len(leaf) == 4]]
    return []


def all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(all_finite(v) for v in value)
    return True


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "hostile.toml"


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_hostile_values_are_refused_by_key_or_make_a_valid_config(config_file, data):
    chosen = data.draw(st.lists(st.sampled_from(LEAVES), min_size=1, max_size=3, unique=True), label="keys")
    assume(not any(a != b and b[:len(a)] == a for a in chosen for b in chosen))
    changes = {loc: data.draw(HOSTILE, label=key_path(loc)) for loc in chosen}
    together = load(config_file, changes)
    if isinstance(together, AppConfig):
        dumped = together.model_dump(mode="json")
        assert all_finite(dumped)
        for s in together.strategies:
            assert all_finite(strategy_class(s.kind).Params.model_validate(s.params).model_dump())
    for loc, value in changes.items():
        alone = load(config_file, {loc: value})
        if isinstance(alone, AppConfig):
            continue
        own = [line for line in alone.splitlines() if names(line, loc)]
        assert own, f"{key_path(loc)} = {value[:80]} is refused without naming it:\n{alone}"
        # another changed key this key's rule reads may be broken too: then the rule waits for it
        partners = [other for other in chosen if other != loc
                    and (other in depends_on(loc) or any(names(line, other) for line in own))]
        if isinstance(together, AppConfig):
            assert partners, f"{key_path(loc)} = {value[:80]} is refused alone but accepted with {changes}"
        elif not isinstance(load(config_file, {key: changes[key] for key in (loc, *partners)}), AppConfig):
            # unless a partner is what makes it valid (phases[0].phase = 4 defines the phase 4 a strategy names)
            lines = together.splitlines()
            assert any(names(line, key) for line in lines for key in [loc, *partners]), \
                f"{key_path(loc)} = {value[:80]} is refused alone ({own}) but not named among:\n{together}"


# ---- the cases, in process and through the real command ---------------------------------------------

CASES = [  # key path, TOML text, what the message says
    (("venue", "seed"), "-1", "greater than or equal to 0"),
    (("instruments", 0, "depth"), "inf", "must be a finite number"),
    (("instruments", 0, "tick_size"), "inf", "must be a finite number"),
    (("instruments", 0, "start_price"), "inf", "must be a finite number"),
    (("session", "starting_cash"), "inf", "must be a finite number, not inf or nan"),
    (("session", "starting_cash"), "1e400", "= inf: must be a finite number, not inf or nan (1e309 and beyond"),
    (("session", "starting_cash"), "true", "must be a number, not true/false; allowed: > 0 and <= 1e+12"),
    (("venue", "jumps_per_day"), "inf", "must be a finite number"),
    (("strategies", 2, "params", "k"), "inf", "must be a finite number"),
    (("instruments", 0, "min_notional"), "inf", "must be a finite number"),
    (("instruments", 2, "start_price"), "0.0005", "must be at least 100 ticks: 100 x instruments[2].tick_size"),
]
MORE_CASES = [
    (("venue", "seed"), "3.0", "must be a whole number, written without a decimal point (3, not 3.0)"),
    (("venue", "seed"), "4294967296", "less than or equal to 4294967295"),
    (("session", "starting_cash"), "1e13", "less than or equal to 1000000000000"),
    (("strategies", 0, "params", "fast"), "true", "must be a whole number, not true/false"),
    (("instruments", 0, "symbol"), '"BTC/USDТ"', "must look like BASE/QUOTE in capitals A-Z"),
    (("strategies", 0, "name"), '"sma_bτc"', "must start with a letter A-Z or a-z"),
    (("store", "path"), '"' + "p" * 2000 + '"', "(2002 characters): String should have at most 1024 characters"),
    (("instruments", 0, "depth"), "0.00001",
     "must be at least instruments[0].lot_size = 0.0001 and instruments[0].min_qty = 0.0001"),
    (("instruments", 0, "min_notional"), "100000.0", "must be at most instruments[0].depth x instruments[0]."),
    (("venue", "correlation"), "-0.5", "with 3 instruments must be above -1/(3 - 1)"),
    (("risk", "min_samples"), "1000", "must be at most risk.window = 240"),
]


def ids(case: tuple[Any, ...]) -> str:
    return f"{key_path(case[0])}={case[1][:12]}"


@pytest.mark.parametrize("case", CASES + MORE_CASES, ids=ids)
def test_each_case_is_refused_by_key_in_process(tmp_path, case):
    loc, text, message = case
    refused = load(tmp_path / "bad.toml", {loc: Raw(text)})
    assert isinstance(refused, str)
    assert f"bad.toml: {key_path(loc)} = " in refused and message in refused, refused


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_the_command_refuses_each_case_before_anything_runs(tmp_path, case):
    loc, text, message = case
    config = tmp_path / "bad.toml"
    config.write_text(toml_text(with_values({loc: Raw(text)})), encoding="utf-8")
    db = tmp_path / "x.sqlite"
    result = paperdesk("run", "--no-ui", "--duration", "1", "--config", str(config), "--db", str(db))
    assert result.returncode == 2, result.stderr
    assert f"{key_path(loc)} = " in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not db.exists() and result.stdout == ""


FOUR_PROBLEMS = {  # a field, an instrument's cross-field rule, a cross reference and a strategy parameter
    ("session", "starting_cash"): Raw("inf"),
    ("instruments", 2, "start_price"): 0.05,
    ("strategies", 0, "symbols"): ["DOGE/USDT"],
    ("strategies", 1, "params", "period"): 1,
}


def test_four_problems_in_four_layers_are_all_printed(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(toml_text(with_values(FOUR_PROBLEMS)), encoding="utf-8")
    db = tmp_path / "x.sqlite"
    result = paperdesk("run", "--no-ui", "--duration", "1", "--config", str(config), "--db", str(db))
    assert result.returncode == 2 and not db.exists()
    lines = result.stderr.removeprefix("paperdesk: ").splitlines()
    assert lines == [
        f"{config}: session.starting_cash = inf: must be a finite number, not inf or nan (1e309 and beyond read as "
        "inf); allowed: > 0 and <= 1e+12",
        f"{config}: instruments[2].start_price = 0.05: must be at least 100 ticks: 100 x instruments[2].tick_size "
        "0.001 = 0.1 (so the one-tick spread stays small; it need not be a multiple of the tick)",
        f"{config}: strategies[0].symbols[0] = 'DOGE/USDT': is not an instrument; instruments are BTC/USDT, "
        "ETH/USDT, SOL/USDT",
        f"{config}: strategies[1].params.period = 1: Input should be greater than or equal to 2",
    ]


def test_a_field_error_does_not_hide_a_rule_on_the_other_keys_of_its_table(tmp_path):
    refused = load(tmp_path / "bad.toml", {("instruments", 0, "depth"): Raw("nan"),
                                           ("instruments", 0, "start_price"): 0.5,
                                           ("instruments", 1, "symbol"): "BTC/USDT",
                                           ("phases", 1, "phase"): 1,
                                           ("breakers", "volatility_short_samples"): 60})
    assert isinstance(refused, str)
    assert [line.split(": ", 2)[1] for line in refused.splitlines()] == [
        "instruments[0].depth = nan", "instruments[0].start_price = 0.5", "instruments[1].symbol = 'BTC/USDT'",
        "phases[1].phase = 1", "strategies[1].symbols[0] = 'ETH/USDT'", "breakers.volatility_short_samples = 60"]


def test_toml_the_parser_cannot_hold_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[venue]\nseed = " + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML: Exceeds the limit"):
        load_config(path)
    path.write_text("[venue]\nseed = " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML: arrays or tables nested too deeply"):
        load_config(path)


def test_a_stored_config_reads_back_under_the_strict_rules():
    config = load_config(SHIPPED)
    assert parse_config(json.loads(json.dumps(config.model_dump(mode="json")))) == config


def test_a_start_price_of_exactly_100_ticks_is_allowed_whatever_the_float_rounding():
    data = copy.deepcopy(DEFAULT)
    data["instruments"][0].update(tick_size=0.07, start_price=7.0, min_notional=0.0)  # 100 x 0.07 = 7.000000000000001
    assert parse_config(data).instruments[0].start_price == 7.0
    data["instruments"][0].update(start_price=6.99)
    with pytest.raises(ConfigError, match=r"start_price = 6.99: must be at least 100 ticks"):
        parse_config(data)
