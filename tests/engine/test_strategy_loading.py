"""User strategies: from a file (relative to the config), a module, or an installed package's entry point; the
built-ins as entry points; a clear message, and nothing started, for each kind of bad strategy; the fingerprint."""

import copy
import json
import re
import sys
import tomllib
from importlib.metadata import EntryPoint, EntryPoints
from pathlib import Path

import pytest

from console.cli import main
from engine.backtest import run_backtest
from engine.config import AppConfig, ConfigError, load_config, parse_config
from engine.model.decision import Signal
from engine.store.sessions import config_text
from engine.strategy import loader
from engine.strategy.base import Strategy
from engine.strategy.builtins.sma_crossover import SmaCrossover
from engine.strategy.loader import strategy_fingerprint
from engine.strategy.registry import strategy_class, strategy_kinds
from tests.conftest import BASE_CONFIG, write_bars, write_config
from tests.store.helpers import query, stepped_session

REPO = Path(__file__).resolve().parents[2]

TREND = '''
from pydantic import Field

from engine.model.market import Bar
from engine.strategy.base import Strategy, StrategyParams


class TrendParams(StrategyParams):
    lookback: int = Field(3, ge=1, le=100)
    size: float = Field(0.01, gt=0)


class Trend(Strategy[TrendParams]):
    Params = TrendParams

    def on_start(self) -> None:
        self.closes = []

    def on_bar(self, bar: Bar) -> None:
        self.closes.append(bar.close)
        if len(self.closes) <= self.params.lookback:
            self.hold(bar.symbol, reason="warming up")
            return
        up = self.closes[-1] > self.closes[-1 - self.params.lookback]
        self.target_position(bar.symbol, self.params.size if up else -self.params.size,
                             reason="up over the lookback" if up else "down over the lookback")
'''


def strategies_with(kind: str, params: dict | None = None) -> list[dict]:
    """BASE_CONFIG's strategies, the first one of the given kind."""
    strategies = copy.deepcopy(BASE_CONFIG["strategies"])
    strategies[0] = dict(strategies[0], kind=kind, params=params if params is not None else {"lookback": 4})
    return strategies


def config_file(folder: Path, kind: str, params: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(folder / "config.toml", dict(BASE_CONFIG, strategies=strategies_with(kind, params)))


@pytest.fixture
def forget_package():
    """forget_package(name): the package a test imports from its tmp_path leaves sys.modules afterwards."""
    names: list[str] = []
    yield names.append
    for module in [m for m in sys.modules if any(m == n or m.startswith(f"{n}.") for n in names)]:
        del sys.modules[module]


# ---- the three sources, and the built-ins ----------------------------------------------------------------------

def test_a_file_path_is_relative_to_the_config_folder_from_any_current_directory(tmp_path, monkeypatch):
    (tmp_path / "strategies").mkdir()
    source = tmp_path / "strategies" / "trend.py"
    source.write_text(TREND)
    path = config_file(tmp_path / "conf", "../strategies/trend.py:Trend")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(path)
    kind = config.strategies[0].kind
    assert kind == f"{source.resolve()}:Trend"  # stored absolute: a resume finds it from any folder
    cls = strategy_class(kind)
    assert issubclass(cls, Strategy) and cls.__name__ == "Trend"
    assert config.strategies[0].params == {"lookback": 4}

    # the session stores the config; read back from yet another folder, it names the same class
    monkeypatch.chdir(tmp_path)
    stored = parse_config(json.loads(config_text(config)), "stored", stored=True)
    assert strategy_class(stored.strategies[0].kind) is cls


def test_a_file_loads_once_under_a_name_of_its_own_and_again_when_it_changes(tmp_path):
    source = tmp_path / "trend.py"
    source.write_text(TREND)
    kind = f"{source}:Trend"
    first = strategy_class(kind)
    assert strategy_class(kind) is first  # the same file gives the same class
    assert "trend" not in sys.modules and "Trend" not in sys.modules
    assert first.__module__.startswith("paperdesk_strategy_file_trend_") and sys.modules[first.__module__]
    # a file of the same name elsewhere is another module
    other = tmp_path / "other"
    other.mkdir()
    (other / "trend.py").write_text(TREND)
    assert strategy_class(f"{other / 'trend.py'}:Trend").__module__ != first.__module__

    source.write_text(TREND + "\n# edited\n")
    assert strategy_class(kind) is not first  # an edited file is run again


def test_a_dotted_module_path_loads_from_sys_path(tmp_path, monkeypatch, forget_package):
    forget_package("desk_loading_pkg")
    package = tmp_path / "pkgs" / "desk_loading_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "trend.py").write_text(TREND)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))

    config = parse_config(dict(BASE_CONFIG, strategies=strategies_with("desk_loading_pkg.trend:Trend")), "t")
    cls = strategy_class(config.strategies[0].kind)
    assert cls.__module__ == "desk_loading_pkg.trend" and cls is strategy_class("desk_loading_pkg.trend:Trend")


def test_an_entry_point_of_an_installed_package_is_a_strategy_name(tmp_path, monkeypatch, forget_package):
    forget_package("acme_desk_strats")
    site = tmp_path / "site"
    (site / "acme_desk_strats").mkdir(parents=True)
    (site / "acme_desk_strats" / "__init__.py").write_text("")
    (site / "acme_desk_strats" / "trend.py").write_text(TREND)
    dist = site / "acme_desk_strats-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-desk-strats\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[paperdesk.strategies]\nacme_trend = acme_desk_strats.trend:Trend\n")
    monkeypatch.syspath_prepend(str(site))

    assert "acme_trend" in strategy_kinds()
    config = parse_config(dict(BASE_CONFIG, strategies=strategies_with("acme_trend")), "t")
    assert config.strategies[0].kind == "acme_trend"
    assert strategy_class("acme_trend").__module__ == "acme_desk_strats.trend"
    # and it trades through the ordinary engine
    result = run_backtest(make_plain(), write_bars(tmp_path / "bars.csv", 60), strategy_kind="acme_trend",
                          params={"lookback": 2})
    assert len(result.engine.decisions) == 60
    assert any(d.signal is not Signal.HOLD for d in result.engine.decisions)


def make_plain() -> AppConfig:
    return parse_config(copy.deepcopy(BASE_CONFIG), "t")


def test_the_builtins_are_entry_points_of_this_package_and_work_without_its_metadata(monkeypatch, request):
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    entries = declared[loader.ENTRY_POINT_GROUP]
    assert set(entries) == {"sma_crossover", "rsi_momentum", "bollinger_mean_reversion"}
    for name, value in entries.items():
        assert EntryPoint(name, value, loader.ENTRY_POINT_GROUP).load() is strategy_class(name)

    # package metadata from before the entries existed (an old install): the built-ins package still has them
    monkeypatch.setattr(loader.importlib.metadata, "entry_points", lambda **kw: EntryPoints(()))
    loader._entry_points_on.cache_clear()
    request.addfinalizer(loader._entry_points_on.cache_clear)  # the real metadata again after this test
    assert loader.entry_point_names() == []
    assert strategy_class("sma_crossover") is SmaCrossover
    assert {"sma_crossover", "rsi_momentum", "bollinger_mean_reversion"} <= set(strategy_kinds())
    assert make_plain().strategies[0].kind == "sma_crossover"


# ---- bad strategies: one clear message each, and nothing starts --------------------------------------------------

BAD = {
    "syntax": ("class Broken(Strategy)\n    pass\n", "Broken", r"syntax\.py:3: SyntaxError: expected ':'"),
    "missing": (TREND, "Trnd", r"missing\.py: no class 'Trnd' in it; strategies there: Trend"),
    "base": ("class NotOne:\n    pass\n", "NotOne",
             r"base\.py:3: class NotOne is not a strategy: it must subclass engine\.strategy\.base\.Strategy"),
    "raises": ("X = 1\nraise RuntimeError('no data folder')\n", "X",
               r"raises\.py:4: RuntimeError: no data folder"),
    "imports": ("import desk_no_such_module\n", "X", r"imports\.py:3: ModuleNotFoundError: No module named "
                                                     r"'desk_no_such_module'"),
    "params": ("class P(StrategyParams):\n    x: int = 1\n\nclass Odd(Strategy):\n    Params = dict\n", "Odd",
               r"params\.py:6: Odd\.Params must be a subclass of engine\.strategy\.base\.StrategyParams"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_strategy_file_is_one_message_naming_file_line_and_exception(tmp_path, case):
    body, cls, message = BAD[case]
    source = tmp_path / f"{case}.py"
    source.write_text("from engine.strategy.base import Strategy, StrategyParams\n\n" + body)
    with pytest.raises(ConfigError) as raised:
        load_config(config_file(tmp_path, f"{case}.py:{cls}"))
    text = str(raised.value)
    assert text.startswith(f"{tmp_path / 'config.toml'}: strategies[0].kind = '{case}.py:{cls}': {source}")
    assert len(text.splitlines()) == 1
    assert re.search(message, text), text


def test_bad_params_name_the_param_and_its_bounds(tmp_path):
    (tmp_path / "trend.py").write_text(TREND)
    with pytest.raises(ConfigError) as raised:
        load_config(config_file(tmp_path, "trend.py:Trend", {"lookback": 0, "size": "big", "speed": 2}))
    lines = str(raised.value).splitlines()
    assert any("strategies[0].params.lookback = 0: Input should be greater than or equal to 1" in x for x in lines)
    assert any("strategies[0].params.size = 'big': must be a number, not a string" in x for x in lines)
    assert any("strategies[0].params.speed: unknown key; allowed keys here: lookback, size" in x for x in lines)


def test_a_missing_file_a_missing_class_name_and_an_unknown_name_say_what_to_write(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.py: no such strategy file \(a relative path is relative to the "
                                          r"config file's folder\)"):
        load_config(config_file(tmp_path, "strategies/nope.py:Nope"))
    (tmp_path / "trend.py").write_text(TREND)
    with pytest.raises(ConfigError, match=r"name the class after a colon"):
        load_config(config_file(tmp_path, "trend.py"))
    with pytest.raises(ConfigError, match=r"is not a known strategy; known: bollinger_mean_reversion.*or give a "
                                          r"file \('strategies/mine.py:MyStrategy'\)"):
        load_config(config_file(tmp_path, "trend"))
    with pytest.raises(ConfigError, match=r"no module named 'desk_nowhere' \(install the package"):
        load_config(config_file(tmp_path, "desk_nowhere.mod:Thing"))


def test_a_bad_strategy_starts_nothing_and_creates_no_database(tmp_path, capsys):
    (tmp_path / "broken.py").write_text("from engine.strategy.base import Strategy\n\nclass B(Strategy):\n"
                                        "    def on_bar(self, bar)\n")
    path = config_file(tmp_path, "broken.py:B")
    db = tmp_path / "desk.sqlite"
    assert main(["run", "--no-ui", "--config", str(path), "--db", str(db), "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'broken.py'}:4: SyntaxError: expected ':'" in err and "Traceback" not in err
    assert not db.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["broken.py", "config.toml"]


# ---- sessions: the fingerprint, and a resume from another folder -------------------------------------------------

async def test_the_session_stores_each_strategy_fingerprint_and_a_change_of_source_or_params_changes_it(
        tmp_path, monkeypatch):
    source = tmp_path / "strategies" / "trend.py"
    source.parent.mkdir()
    source.write_text(TREND)
    path = config_file(tmp_path / "conf", "../strategies/trend.py:Trend")
    config = load_config(path)
    db = tmp_path / "desk.sqlite"
    session = await stepped_session(db, config, steps=30)
    rows = dict(query(db, "SELECT name, fingerprint FROM strategies WHERE session_id = 1"))
    trend = session.engine.strategies["sma_btc"]
    assert rows["sma_btc"] == strategy_fingerprint(trend) and len(rows["sma_btc"]) == 64
    assert rows["rsi_eth"] == strategy_fingerprint(session.engine.strategies["rsi_eth"])
    assert query(db, "SELECT kind FROM strategies WHERE name = 'sma_btc'") == [("Trend",)]

    # resumed from another folder: the stored absolute path finds the same file
    monkeypatch.chdir(tmp_path / "strategies")
    resumed = await stepped_session(db, load_config(path), steps=10)
    assert resumed.recovered is not None and resumed.engine.strategies["sma_btc"].status.value == "RUNNING"

    # one changed line of the source, or one parameter, is another fingerprint; the same source is the same
    cls = strategy_class(config.strategies[0].kind)
    same = strategy_fingerprint(cls("a", ["BTC/USDT"], "1m", {"lookback": 4}))
    assert same == rows["sma_btc"]
    assert strategy_fingerprint(cls("a", ["BTC/USDT"], "1m", {"lookback": 5})) != same
    source.write_text(TREND.replace("reason=\"warming up\"", "reason=\"still warming up\""))
    edited = strategy_class(load_config(path).strategies[0].kind)
    assert edited is not cls
    assert strategy_fingerprint(edited("a", ["BTC/USDT"], "1m", {"lookback": 4})) != same
    other = await stepped_session(tmp_path / "other.sqlite", load_config(path), steps=5)
    assert other.session_id == 1
    assert query(tmp_path / "other.sqlite", "SELECT fingerprint FROM strategies WHERE name = 'sma_btc'") != \
        [(same,)]


def test_a_builtin_fingerprint_is_its_module_source_and_params():
    a = SmaCrossover("a", ["BTC/USDT"], "1m", {"fast": 3, "slow": 8})
    b = SmaCrossover("b", ["ETH/USDT"], "5m", {"slow": 8, "fast": 3})
    assert strategy_fingerprint(a) == strategy_fingerprint(b)  # name, symbols and timeframe are not the strategy
    assert strategy_fingerprint(a) != strategy_fingerprint(SmaCrossover("a", ["BTC/USDT"], "1m", {"fast": 4}))
    module = sys.modules[SmaCrossover.__module__]
    assert loader.strategy_source(SmaCrossover) == Path(module.__file__).read_bytes()
