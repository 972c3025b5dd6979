"""config.toml as pydantic models. Every error names the key, the bad value and what is allowed."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.data.bars import timeframe_ns
from engine.execution.fill_model import LimitFillRule
from engine.strategy.registry import strategy_class, strategy_kinds

_SYMBOL = re.compile(r"^[A-Z0-9]+/[A-Z0-9]+$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")


class ConfigError(ValueError):
    """Configuration that cannot run; str() is one line per problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionConfig(_Section):
    starting_cash: float = Field(100_000.0, gt=0)
    equity_mark_seconds: float = Field(1.0, gt=0, le=3600)
    status_seconds: float = Field(5.0, gt=0, le=3600)


class StoreConfig(_Section):
    """Where and how sessions are persisted. A relative path is relative to the config file's folder."""

    path: str = Field("paperdesk.sqlite", min_length=1)
    flush_ms: float = Field(100.0, ge=5, le=5000)
    max_backlog_rows: int = Field(200_000, ge=1000, le=10_000_000)
    write_retry_seconds: float = Field(5.0, ge=0, le=600)


class FeedGapConfig(_Section):
    """A rehearsed feed outage: the engine receives nothing for `minutes` of market time.

    The venue's data during it is still recorded (as missed), so `paperdesk validate` can show
    what the outage changed.
    """

    start_minutes: float = Field(ge=0)            # market minutes after the session started
    minutes: float = Field(gt=0, le=7 * 24 * 60)


class VenueConfig(_Section):
    """The built-in simulated venue; speed > 1 runs market time faster than the wall clock."""

    kind: Literal["simulated"] = "simulated"
    seed: int = 7
    speed: float = Field(120.0, gt=0, le=10_000)
    tick_interval_ms: float = Field(25.0, ge=1, le=60_000)
    correlation: float = Field(0.6, ge=-0.5, le=0.99)
    jumps_per_day: float = Field(6.0, ge=0)
    latency_ms: float = Field(50.0, ge=0, le=3_600_000)       # market time; beyond a bar rehearses a lagging venue
    limit_fill: LimitFillRule = LimitFillRule.QUEUE
    bar_slippage_bps: float = Field(0.0, ge=0, le=1000)
    slippage: bool = True                         # false: market orders fill whole at the mid (`run --ideal`)
    feed_gaps: list[FeedGapConfig] = Field(default_factory=list)


class RiskConfig(_Section):
    """Pre-trade limits, checked on every order a strategy intends. A limit left unset is not checked.

    Exposure limits are fractions of equity; quantity and value limits are per symbol, across strategies,
    and count open orders as if they filled.
    """

    max_order_qty: dict[str, float] = Field(default_factory=dict)   # symbol -> largest single order
    max_order_notional: float | None = Field(None, gt=0)
    max_position_qty: dict[str, float] = Field(default_factory=dict)  # symbol -> largest net position
    max_position_notional: float | None = Field(None, gt=0)
    max_gross_exposure: float | None = Field(None, gt=0, le=100)
    max_net_exposure: float | None = Field(None, gt=0, le=100)
    max_open_positions: int | None = Field(None, ge=1)
    max_trades_per_day: int | None = Field(None, ge=1)            # entries per UTC day of market time
    max_submit_rate: float | None = Field(100.0, gt=0)            # orders per second of market time
    max_short_exposure: float | None = Field(1.0, ge=0, le=100)   # margin: short value as a fraction of equity
    correlation_limit: float | None = Field(None, gt=0, le=1)
    var_limit: float | None = Field(None, gt=0, le=1)             # historical 95% VaR over var_horizon_seconds
    var_horizon_seconds: float = Field(86_400.0, gt=0)
    sample_seconds: float = Field(60.0, gt=0)                     # market seconds between return samples
    window: int = Field(240, ge=10, le=100_000)                   # return samples kept per symbol
    min_samples: int = Field(30, ge=5)                            # correlation and VaR need this many first

    @field_validator("max_order_qty", "max_position_qty")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {s: q for s, q in v.items() if not q > 0}
        if bad:
            raise ValueError(f"limits must be > 0, got {bad}")
        return v


class BreakersConfig(_Section):
    """Circuit breakers; set one to nothing (omit it in an override file, or null in JSON) to switch it off.

    Times are market time. Defaults are the design notes' (daily loss 1%, drawdown from peak 3%, ...).
    """

    evaluate_seconds: float = Field(1.0, gt=0, le=3600)          # also after every fill
    warn_at: float = Field(0.8, gt=0, lt=1)                      # gauges warn at this fraction of a limit
    daily_loss: float | None = Field(0.01, gt=0, lt=1)
    daily_loss_cooldown_hours: float = Field(4.0, ge=0)
    drawdown: float | None = Field(0.03, gt=0, lt=1)
    drawdown_cooldown_hours: float = Field(24.0, ge=0)
    order_latency_seconds: float | None = Field(2.0, gt=0)
    latency_pause_hours: float = Field(1.0, ge=0)
    correlation: float | None = Field(0.7, gt=0, le=1)
    consecutive_losses: int | None = Field(5, ge=1)
    losses_cooldown_hours: float = Field(1.0, ge=0)
    volatility_spike: float | None = Field(3.0, gt=1)             # short-window vol / long-window vol
    volatility_short_samples: int = Field(5, ge=2)
    volatility_long_samples: int = Field(60, ge=10)
    volatility_pause_hours: float = Field(0.5, ge=0)
    stale_seconds: float | None = Field(60.0, gt=0)               # a symbol with no data for this long is stale
    max_clock_skew_seconds: float | None = Field(5.0, gt=0)
    healthy_after_seconds: float = Field(30.0, ge=0)              # clean data needed after a gap or bad book

    @model_validator(mode="after")
    def _windows(self) -> BreakersConfig:
        if self.volatility_short_samples >= self.volatility_long_samples:
            raise ValueError("volatility_short_samples must be smaller than volatility_long_samples")
        return self


class ValidationConfig(_Section):
    """Behaviour validation: how paper decisions are matched to the twin backtest's, and what passes."""

    tolerance_bars: float = Field(1.0, ge=0, le=1000)          # match window, in bars of the strategy's timeframe
    live_interval_seconds: float | None = Field(60.0, ge=1)    # wall seconds between live scores; none = off
    min_score: float = Field(85.0, ge=0, le=100)               # the behaviour score must exceed these
    min_signal_agreement: float = Field(90.0, ge=0, le=100)    # percent of matched decisions
    max_timing_seconds: float = Field(60.0, gt=0)              # average absolute time difference must be below
    min_trade_matching: float = Field(95.0, ge=0, le=100)      # percent of decisions matched one-to-one


class PromotionConfig(_Section):
    """When a strategy may leave paper (`paperdesk evaluate`). Days are market time."""

    min_trades: int = Field(20, ge=0)                  # closed round trips
    min_days: float = Field(14.0, ge=0)
    min_score: float = Field(85.0, ge=0, le=100)       # behaviour score, at least
    max_drawdown: float = Field(0.15, gt=0, le=1)      # of the strategy's capital, at most
    min_sharpe: float = Field(0.5)
    manual_review: bool = True                         # a person signs off before real money
    periods_per_year: int = Field(365, ge=1)           # daily returns: 365 for 24/7 crypto, 252 for exchanges
    risk_free_annual: float = Field(0.0, ge=-0.1, le=1)


class PhaseConfig(_Section):
    """A progressive risk phase: caps a strategy's sizing until the operator advances it."""

    phase: int = Field(ge=1)
    risk_per_trade: float = Field(gt=0, le=1)   # equity at risk per entry (needs a stop distance)
    max_exposure: float = Field(gt=0, le=100)   # the strategy's gross exposure, fraction of equity
    max_symbols: int | None = Field(None, ge=1)  # symbols the strategy may hold at once


class SizingConfig(_Section):
    """How an entry's quantity is chosen; `strategy` keeps the quantity the strategy asked for."""

    mode: Literal["strategy", "fixed", "fraction", "risk", "atr", "kelly"] = "strategy"
    qty: float | None = Field(None, gt=0)                 # fixed
    fraction: float = Field(0.02, gt=0, le=10)             # fraction: notional as a fraction of equity
    risk: float = Field(0.005, gt=0, le=1)                 # risk: equity lost if the stop is hit
    atr_period: int = Field(14, ge=2)
    atr_multiple: float = Field(2.0, gt=0)                 # atr: the stop distance in ATRs
    kelly_fraction: float = Field(0.5, gt=0, le=1)          # kelly: of the full Kelly bet
    kelly_cap: float = Field(0.05, gt=0, le=1)             # kelly: notional cap, fraction of equity
    kelly_min_trades: int = Field(20, ge=1)                # kelly: below this, size as `fraction`

    @model_validator(mode="after")
    def _fixed_needs_qty(self) -> SizingConfig:
        if self.mode == "fixed" and self.qty is None:
            raise ValueError("mode 'fixed' needs qty")
        return self


class ExitsConfig(_Section):
    """Brackets attached to every entry: stop-loss and take-profit orders (one cancels the other), trailing stop."""

    stop_loss_pct: float | None = Field(None, gt=0, lt=1)
    take_profit_pct: float | None = Field(None, gt=0, le=10)
    trailing_pct: float | None = Field(None, gt=0, lt=1)


class InstrumentConfig(_Section):
    symbol: str
    tick_size: float = Field(gt=0)
    lot_size: float = Field(gt=0)
    min_qty: float = Field(0.0, ge=0)
    min_notional: float = Field(0.0, ge=0)
    maker_fee: float = Field(0.0002, ge=-0.01, le=0.1)
    taker_fee: float = Field(0.0005, ge=0, le=0.1)
    start_price: float = Field(100.0, gt=0)
    daily_vol: float = Field(0.04, gt=0, le=2)
    spread_bps: float = Field(2.0, gt=0, le=1000)
    depth: float = Field(1.0, gt=0)

    @field_validator("symbol")
    @classmethod
    def _symbol_shape(cls, v: str) -> str:
        if not _SYMBOL.match(v):
            raise ValueError("must look like BASE/QUOTE in capitals, e.g. BTC/USDT")
        return v


class StrategyConfig(_Section):
    name: str
    kind: str
    symbols: list[str] = Field(min_length=1)
    timeframe: str = "1m"
    params: dict[str, Any] = Field(default_factory=dict)
    sizing: SizingConfig = SizingConfig()
    exits: ExitsConfig = ExitsConfig()
    phase: int | None = Field(None, ge=1)   # a [[phases]] entry; none = not phased

    @field_validator("name")
    @classmethod
    def _name_shape(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must start with a letter and use letters, digits, _ or - (at most 40)")
        return v

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in strategy_kinds():
            raise ValueError(f"is not a known strategy; known: {', '.join(strategy_kinds())}")
        return v

    @field_validator("timeframe")
    @classmethod
    def _timeframe_shape(cls, v: str) -> str:
        timeframe_ns(v)
        return v


class AppConfig(_Section):
    session: SessionConfig = SessionConfig()
    venue: VenueConfig = VenueConfig()
    store: StoreConfig = StoreConfig()
    risk: RiskConfig = RiskConfig()
    breakers: BreakersConfig = BreakersConfig()
    validation: ValidationConfig = ValidationConfig()
    promotion: PromotionConfig = PromotionConfig()
    phases: list[PhaseConfig] = Field(default_factory=list)
    instruments: list[InstrumentConfig] = Field(min_length=1)
    strategies: list[StrategyConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> AppConfig:
        symbols = [i.symbol for i in self.instruments]
        dupes = sorted({s for s in symbols if symbols.count(s) > 1})
        if dupes:
            raise ValueError(f"instruments: symbol(s) {', '.join(dupes)} listed more than once")
        names = [s.name for s in self.strategies]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"strategies: name(s) {', '.join(dupes)} used more than once")
        for index, strategy in enumerate(self.strategies):
            for symbol in strategy.symbols:
                if symbol not in symbols:
                    raise ValueError(f"strategies[{index}].symbols: {symbol!r} is not an instrument; "
                                     f"instruments are {', '.join(symbols)}")
        phases = [p.phase for p in self.phases]
        if len(set(phases)) != len(phases):
            raise ValueError("phases: a phase number is defined more than once")
        for index, strategy in enumerate(self.strategies):
            if strategy.phase is not None and strategy.phase not in phases:
                raise ValueError(f"strategies[{index}].phase = {strategy.phase}: no such [[phases]] entry; "
                                 f"defined: {', '.join(map(str, sorted(phases))) or 'none'}")
        for key in ("max_order_qty", "max_position_qty"):
            for symbol in getattr(self.risk, key):
                if symbol not in symbols:
                    raise ValueError(f"risk.{key}: {symbol!r} is not an instrument; instruments are "
                                     f"{', '.join(symbols)}")
        return self


def load_config(path: str | Path) -> AppConfig:
    """Read and validate a config file, strategy parameters included; raises ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (pass --config FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path))


def parse_config(data: dict[str, Any], source: str = "config") -> AppConfig:
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_describe(source, err) for err in exc.errors())) from None
    problems = []
    for index, strategy in enumerate(config.strategies):
        try:
            strategy_class(strategy.kind).Params(**strategy.params)
        except ValidationError as exc:
            for err in exc.errors():
                located = dict(err, loc=("strategies", index, "params", *err["loc"]))
                problems.append(_describe(source, located, strategy_class(strategy.kind).Params))
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def key_path(loc: tuple[Any, ...]) -> str:
    """('strategies', 0, 'params', 'fast') -> 'strategies[0].params.fast'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(source: str, err: Mapping[str, Any], params_model: type[BaseModel] | None = None) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))  # drop union tags
    key = key_path(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], params_model)
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{source}: {key}: unknown key{hint}"
    if err["type"] == "missing":
        return f"{source}: {key}: required key is missing"
    msg = err["msg"].removeprefix("Value error, ")
    if loc:
        return f"{source}: {key} = {err.get('input')!r}: {msg}"
    return f"{source}: {msg}"


def _allowed_keys(loc: tuple[Any, ...], params_model: type[BaseModel] | None) -> list[str]:
    """Field names of the model a location points into, for 'unknown key' hints."""
    if params_model is not None and len(loc) >= 3 and loc[2] == "params":
        return list(params_model.model_fields)
    model: Any = AppConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        model = args[0] if args else annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []
