"""Strategy[P]: the type argument and Params agree, and the generic base changes nothing at run time."""

from typing import get_args, get_origin

import pytest
from pydantic import ValidationError

from engine.strategy.base import Strategy, StrategyParams
from engine.strategy.builtins.sma_crossover import SmaCrossoverParams
from engine.strategy.registry import strategy_class, strategy_kinds


def _type_argument(cls: type) -> object:
    for base in getattr(cls, "__orig_bases__", ()):
        if get_origin(base) is Strategy:
            return get_args(base)[0]
    raise AssertionError(f"{cls.__name__} does not subclass Strategy[...]")


def test_every_shipped_strategy_types_params_as_the_model_it_validates_with():
    # mypy trusts the type argument and __init__ validates with Params: a mismatch would type self.params wrongly
    shipped = [strategy_class(kind) for kind in strategy_kinds()]
    shipped = [cls for cls in shipped if cls.__module__.startswith("engine.")]  # not the tests' own strategies
    assert len(shipped) >= 3
    for cls in shipped:
        assert _type_argument(cls) is cls.Params, cls.__name__


def test_params_are_the_validated_model_and_unknown_ones_are_still_an_error():
    cls = strategy_class("sma_crossover")
    strategy = cls("sma", ["BTC/USDT"], "1m", {"fast": 3, "slow": 8})
    assert type(strategy.params) is SmaCrossoverParams
    assert (strategy.params.fast, strategy.params.slow) == (3, 8)
    with pytest.raises(ValidationError, match="slwo"):
        cls("sma", ["BTC/USDT"], "1m", {"slwo": 8})


def test_a_bare_subclass_still_works():
    class Plain(Strategy):
        kind = "plain_test"

    assert type(Plain("p", ["BTC/USDT"], "1m").params) is StrategyParams


def test_a_strategy_not_attached_to_an_engine_says_so():
    strategy = strategy_class("sma_crossover")("sma", ["BTC/USDT"], "1m")
    with pytest.raises(RuntimeError, match="strategy sma is not attached to an engine"):
        strategy.position("BTC/USDT")
    with pytest.raises(RuntimeError, match="not attached"):
        strategy.hold("BTC/USDT", reason="idle")
