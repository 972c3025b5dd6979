"""Builds an Engine from config: instruments, strategies, the fill model, risk rules.

The same builders serve paper sessions (engine/session.py) and backtests: only the clock, the data
source and the broker differ.
"""

from __future__ import annotations

from engine.brokers.broker import Broker
from engine.clock import Clock
from engine.config import AppConfig, ConfigError, InstrumentConfig
from engine.core import Engine
from engine.execution.fill_model import FillModel
from engine.model.instrument import Instrument
from engine.risk.manager import RiskRules, StrategyRules
from engine.strategy.base import Strategy
from engine.strategy.registry import strategy_class


def build_instrument(cfg: InstrumentConfig) -> Instrument:
    """The instrument a config entry describes; a ccxt venue's entries get their grid when the session opens."""
    if cfg.tick_size is None or cfg.lot_size is None:
        raise ConfigError(f"instruments {cfg.symbol}: no tick_size or lot_size; a ccxt venue's come from the "
                          "exchange when a paper session opens, so this command cannot use its config")
    base, quote = cfg.symbol.split("/")
    return Instrument(cfg.symbol, base, quote, cfg.tick_size, cfg.lot_size, cfg.min_qty, cfg.min_notional,
                      cfg.maker_fee, cfg.taker_fee)


def build_strategies(config: AppConfig) -> list[Strategy]:
    return [strategy_class(s.kind)(s.name, s.symbols, s.timeframe, s.params, timeframes=s.timeframes)
            for s in config.strategies]


def build_fill_model(config: AppConfig) -> FillModel:
    v = config.venue
    return FillModel(int(v.latency_ms * 1_000_000), v.limit_fill, v.bar_slippage_bps, v.slippage)


def ideal_venue(config: AppConfig) -> AppConfig:
    """config with the parity venue: zero latency, no slippage (what the twin backtest assumes)."""
    venue = config.venue.model_copy(update={"latency_ms": 0.0, "slippage": False, "bar_slippage_bps": 0.0})
    return config.model_copy(update={"venue": venue})


def build_risk_rules(config: AppConfig) -> RiskRules:
    return RiskRules(config.risk, config.breakers, tuple(config.phases),
                     {s.name: StrategyRules(s.sizing, s.exits, s.phase) for s in config.strategies})


def build_instruments(config: AppConfig) -> dict[str, Instrument]:
    return {i.symbol: build_instrument(i) for i in config.instruments}


def build_engine(config: AppConfig, clock: Clock, strategies: list[Strategy] | None = None,
                 fill_model: FillModel | None = None, broker: Broker | None = None,
                 order_id_prefix: str = "O") -> Engine:
    """An engine for config's instruments, strategies (or the given ones) and risk rules on clock.

    Without a broker it trades on the simulated venue with config's (or the given) fill model, as a
    backtest does.
    """
    return Engine(clock, list(build_instruments(config).values()), config.session.starting_cash,
                  build_strategies(config) if strategies is None else strategies,
                  build_fill_model(config) if fill_model is None else fill_model,
                  risk_rules=build_risk_rules(config), broker=broker, order_id_prefix=order_id_prefix)
