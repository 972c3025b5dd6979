"""config.toml as pydantic models. Every error names the key, the bad value and what is allowed."""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from engine.clock import NS_PER_SECOND
from engine.data.bars import timeframe_ns
from engine.execution.fill_model import LimitFillRule
from engine.strategy.loader import OTHER_SOURCES, UnknownStrategy, absolute_kind
from engine.strategy.registry import strategy_class

_SYMBOL = re.compile(r"[A-Z0-9]{1,20}/[A-Z0-9]{1,20}")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")

# Upper bounds no trader reaches; they keep every number the engine multiplies far from float overflow.
MAX_CASH = 1e12
MAX_QTY = 1e12
MAX_NOTIONAL = 1e15
MAX_PRICE = 1e10
MIN_STEP = 1e-12                 # smallest tick and lot size
MIN_TICKS = 100                  # a start price of fewer ticks makes the one-tick spread a large part of the price
MAX_SEED = 2**32 - 1
YEAR_HOURS = 366 * 24
DAY_SECONDS = 86_400
MAX_COUNT = 1_000_000            # trades, samples and other counts
MAX_TIMEFRAME_NS = 31 * DAY_SECONDS * NS_PER_SECOND

_Qty = Annotated[float, Field(gt=0, le=MAX_QTY)]


class ConfigError(ValueError):
    """Configuration that cannot run; str() is one line per problem."""


class _Section(BaseModel):
    # strict: a boolean is not a number and 3.0 is not a whole number; no inf or nan anywhere
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class SessionConfig(_Section):
    starting_cash: float = Field(100_000.0, gt=0, le=MAX_CASH)
    equity_mark_seconds: float = Field(1.0, gt=0, le=3600)
    status_seconds: float = Field(5.0, gt=0, le=3600)
    # a paper session warns about a strategy callback slower than this, and pauses the strategy after overruns of them
    strategy_budget_ms: float = Field(50.0, gt=0, le=60_000)
    strategy_overruns: int = Field(3, ge=1, le=MAX_COUNT)


class StoreConfig(_Section):
    """Where and how sessions are persisted. A relative path is relative to the config file's folder."""

    path: str = Field("paperdesk.sqlite", min_length=1, max_length=1024)
    flush_ms: float = Field(100.0, ge=5, le=5000)
    max_backlog_rows: int = Field(200_000, ge=1000, le=10_000_000)
    write_retry_seconds: float = Field(5.0, ge=0, le=600)

    @field_validator("path")
    @classmethod
    def _no_nul(cls, v: str) -> str:
        if "\0" in v:
            raise ValueError("must not contain a NUL character")
        return v


class FeedGapConfig(_Section):
    """A rehearsed feed outage: the engine receives nothing for `minutes` of market time.

    The venue's data during it is still recorded (as missed), so `paperdesk validate` can show
    what the outage changed.
    """

    start_minutes: float = Field(ge=0, le=10 * YEAR_HOURS * 60)    # market minutes after the session started
    minutes: float = Field(gt=0, le=7 * 24 * 60)


class VenueConfig(_Section):
    """Where market data comes from; orders always fill in our own simulator (paper money only).

    kind "simulated": the built-in synthetic market; speed > 1 runs market time faster than the wall clock.
    kind "ccxt": a crypto exchange's public books and trades through ccxt, in real time; instruments' ticks, lots and
    minimums come from the exchange's market list when the session opens. Mode "paper" fills orders in our simulator;
    mode "sandbox" sends them to the exchange's testnet, with keys read from the environment variables key_env and
    secret_env name (the config holds the names only, never a key).
    Each kind takes only its own keys (the cross-field rules say which), and a stored config holds only those.
    """

    kind: Literal["simulated", "ccxt"] = "simulated"
    # simulated
    seed: int = Field(7, ge=0, le=MAX_SEED)
    speed: float = Field(120.0, gt=0, le=10_000)  # a ccxt venue's is 1: a real exchange runs on the wall clock
    tick_interval_ms: float = Field(25.0, ge=1, le=60_000)
    correlation: float = Field(0.6, ge=-0.5, le=0.99)
    jumps_per_day: float = Field(6.0, ge=0, le=10_000)
    # ccxt
    exchange: str | None = Field(None, max_length=40)   # a ccxt exchange id: binance, okx, kraken, ...
    mode: str = Field("paper", max_length=40)
    url: str | None = Field(None, max_length=200)       # a stand-in for the exchange on this machine (tests, fakes)
    depth: int = Field(10, ge=1, le=1000)               # book levels kept per side
    timeout_ms: float = Field(10_000.0, ge=100, le=120_000)  # per request to the exchange
    # sandbox: the environment variables holding the testnet key and secret (default <EXCHANGE>_TESTNET_KEY/_SECRET)
    key_env: str | None = Field(None, max_length=100)
    secret_env: str | None = Field(None, max_length=100)
    # both: how our fill simulator fills paper orders, and rehearsed feed outages
    latency_ms: float = Field(50.0, ge=0, le=3_600_000)       # market time; beyond a bar rehearses a lagging venue
    limit_fill: LimitFillRule = Field(LimitFillRule.QUEUE, strict=False)  # lax: the rule's name is its value
    bar_slippage_bps: float = Field(0.0, ge=0, le=1000)
    slippage: bool = True                         # false: market orders fill whole at the mid (`run --ideal`)
    feed_gaps: list[FeedGapConfig] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _real_time(cls, data: Any) -> Any:
        # a real exchange's market runs in real time: speed defaults to 1 there (anything else is refused)
        if isinstance(data, Mapping) and data.get("kind") == "ccxt" and "speed" not in data:
            return {**data, "speed": 1.0}
        return data

    @model_serializer(mode="wrap")
    def _own_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # a stored config reads back under the rule that each kind takes only its own keys
        return {k: v for k, v in handler(self).items() if k not in VENUE_KEYS[_other_kind(self.kind)]}

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, v: str | None) -> str | None:
        import ccxt  # only a ccxt venue pays for importing it

        if v is not None and v not in ccxt.exchanges:
            close = difflib.get_close_matches(v.lower(), ccxt.exchanges, n=5, cutoff=0.6)
            known = f"ccxt {ccxt.__version__} knows {len(ccxt.exchanges)}"
            hint = f"close ones: {', '.join(close)}" if close else known
            raise ValueError(f"ccxt has no such exchange ({hint})")
        return v

    @field_validator("mode")
    @classmethod
    def _paper_only(cls, v: str) -> str:
        if v not in VENUE_MODES:
            raise ValueError("paperdesk trades paper money only: 'paper' fills on the exchange's live book in this "
                             "process and sends no order; 'sandbox' sends orders to the exchange's testnet")
        return v

    @field_validator("key_env", "secret_env")
    @classmethod
    def _variable_name(cls, v: str | None) -> str | None:
        # upper case, as variable names are and exchange keys (mixed case, hex or with dashes) are not: a key pasted
        # here is refused, and its message does not echo it (_describe)
        if v is not None and not re.fullmatch(r"[A-Z_][A-Z0-9_]{0,63}", v):
            raise ValueError("must name an environment variable (upper-case letters, digits and _, at most 64), "
                             "e.g. BINANCE_TESTNET_KEY; the config never holds a key itself")
        return v

    @field_validator("url")
    @classmethod
    def _loopback(cls, v: str | None) -> str | None:
        from engine.venues_ccxt.connection import loopback_url  # imports ccxt: only when a url is given

        return None if v is None else loopback_url(v)


# the keys only one venue kind takes
VENUE_KEYS = {"simulated": ("seed", "tick_interval_ms", "correlation", "jumps_per_day"),
              "ccxt": ("exchange", "mode", "url", "depth", "timeout_ms", "key_env", "secret_env")}
VENUE_MODES = ("paper", "sandbox")
SANDBOX_EXCHANGES = ("binance",)  # the testnets the sandbox broker speaks to (orders, user-data stream, client ids)
# what a refused value here is, is never repeated: it may be a key pasted where its variable's name belongs
UNSHOWN_KEYS = {("venue", "key_env"), ("venue", "secret_env"), ("venue", "url")}  # may hold a password


def _other_kind(kind: str) -> str:
    return "ccxt" if kind == "simulated" else "simulated"


class RiskConfig(_Section):
    """Pre-trade limits, checked on every order a strategy intends. A limit left unset is not checked.

    Exposure limits are fractions of equity; quantity and value limits are per symbol, across strategies,
    and count open orders as if they filled.
    """

    max_order_qty: dict[str, _Qty] = Field(default_factory=dict)   # symbol -> largest single order
    max_order_notional: float | None = Field(None, gt=0, le=MAX_NOTIONAL)
    max_position_qty: dict[str, _Qty] = Field(default_factory=dict)  # symbol -> largest net position
    max_position_notional: float | None = Field(None, gt=0, le=MAX_NOTIONAL)
    max_gross_exposure: float | None = Field(None, gt=0, le=100)
    max_net_exposure: float | None = Field(None, gt=0, le=100)
    max_open_positions: int | None = Field(None, ge=1, le=MAX_COUNT)
    max_trades_per_day: int | None = Field(None, ge=1, le=MAX_COUNT)   # entries per UTC day of market time
    max_submit_rate: float | None = Field(100.0, gt=0, le=MAX_COUNT)   # orders per second of market time
    max_short_exposure: float | None = Field(1.0, ge=0, le=100)   # margin: short value as a fraction of equity
    correlation_limit: float | None = Field(None, gt=0, le=1)
    var_limit: float | None = Field(None, gt=0, le=1)             # historical 95% VaR over var_horizon_seconds
    var_horizon_seconds: float = Field(86_400.0, gt=0, le=366 * DAY_SECONDS)
    sample_seconds: float = Field(60.0, gt=0, le=7 * DAY_SECONDS)  # market seconds between return samples
    window: int = Field(240, ge=10, le=100_000)                   # return samples kept per symbol
    min_samples: int = Field(30, ge=5, le=100_000)                # correlation and VaR need this many first


class BreakersConfig(_Section):
    """Circuit breakers; set one to nothing (omit it in an override file, or null in JSON) to switch it off.

    Times are market time. Defaults are the design notes' (daily loss 1%, drawdown from peak 3%, ...).
    """

    evaluate_seconds: float = Field(1.0, gt=0, le=3600)          # also after every fill
    warn_at: float = Field(0.8, gt=0, lt=1)                      # gauges warn at this fraction of a limit
    daily_loss: float | None = Field(0.01, gt=0, lt=1)
    daily_loss_cooldown_hours: float = Field(4.0, ge=0, le=YEAR_HOURS)
    drawdown: float | None = Field(0.03, gt=0, lt=1)
    drawdown_cooldown_hours: float = Field(24.0, ge=0, le=YEAR_HOURS)
    order_latency_seconds: float | None = Field(2.0, gt=0, le=DAY_SECONDS)
    latency_pause_hours: float = Field(1.0, ge=0, le=YEAR_HOURS)
    correlation: float | None = Field(0.7, gt=0, le=1)
    consecutive_losses: int | None = Field(5, ge=1, le=MAX_COUNT)
    losses_cooldown_hours: float = Field(1.0, ge=0, le=YEAR_HOURS)
    volatility_spike: float | None = Field(3.0, gt=1, le=1000)    # short-window vol / long-window vol
    volatility_short_samples: int = Field(5, ge=2, le=100_000)
    volatility_long_samples: int = Field(60, ge=10, le=100_000)
    volatility_pause_hours: float = Field(0.5, ge=0, le=YEAR_HOURS)
    stale_seconds: float | None = Field(60.0, gt=0, le=7 * DAY_SECONDS)  # a symbol with no data for this long is stale
    max_clock_skew_seconds: float | None = Field(5.0, gt=0, le=DAY_SECONDS)
    healthy_after_seconds: float = Field(30.0, ge=0, le=DAY_SECONDS)  # clean data needed after a gap or bad book


class ValidationConfig(_Section):
    """Behaviour validation: how paper decisions are matched to the twin backtest's, and what passes."""

    tolerance_bars: float = Field(1.0, ge=0, le=1000)          # match window, in bars of the strategy's timeframe
    live_interval_seconds: float | None = Field(60.0, ge=1, le=DAY_SECONDS)  # wall seconds between live scores
    min_score: float = Field(85.0, ge=0, le=100)               # the behaviour score must reach these (>=)
    min_signal_agreement: float = Field(90.0, ge=0, le=100)    # percent of matched decisions
    max_timing_seconds: float = Field(60.0, gt=0, le=7 * DAY_SECONDS)  # average absolute time difference, at most
    min_trade_matching: float = Field(95.0, ge=0, le=100)      # percent of decisions matched one-to-one
    max_unexplained: int = Field(0, ge=0, le=MAX_COUNT)        # differences with no cause, at most
    # the longest the counterfactual replays proving one difference may take (market data replayed at the twin's
    # speed); a difference over it is "not proven". 0: no proofs, every difference unexplained
    proof_budget_s: float = Field(30.0, ge=0, le=DAY_SECONDS)


class ConsoleConfig(_Section):
    """The operator console: its theme, keys remapped by action id (the console refuses an unknown id, naming the
    valid ones) and whether its alerts ring the terminal bell. It changes nothing that trades."""

    theme: str | None = None
    keys: dict[str, str] = Field(default_factory=dict)  # e.g. emergency-stop = "ctrl+e"
    bell: bool = False


class PromotionConfig(_Section):
    """When a strategy may leave paper (`paperdesk evaluate`). Days are market time."""

    min_trades: int = Field(20, ge=0, le=MAX_COUNT)    # closed round trips
    min_days: float = Field(14.0, ge=0, le=3660)
    min_score: float = Field(85.0, ge=0, le=100)       # behaviour score, at least
    max_drawdown: float = Field(0.15, gt=0, le=1)      # of the strategy's capital, at most
    min_sharpe: float = Field(0.5, ge=-1e6, le=1e6)           # a very low one switches the criterion off
    manual_review: bool = True                         # a person signs off before real money
    periods_per_year: int = Field(365, ge=1, le=366 * DAY_SECONDS)  # daily returns: 365 for 24/7, 252 for exchanges
    risk_free_annual: float = Field(0.0, ge=-0.1, le=1)


class PhaseConfig(_Section):
    """A progressive risk phase: caps a strategy's sizing until the operator advances it."""

    phase: int = Field(ge=1, le=1000)
    risk_per_trade: float = Field(gt=0, le=1)   # equity at risk per entry (needs a stop distance)
    max_exposure: float = Field(gt=0, le=100)   # the strategy's gross exposure, fraction of equity
    max_symbols: int | None = Field(None, ge=1, le=MAX_COUNT)  # symbols the strategy may hold at once


class SizingConfig(_Section):
    """How an entry's quantity is chosen; `strategy` keeps the quantity the strategy asked for.

    mode 'fixed' needs qty (checked with the other cross-field rules in parse_config).
    """

    mode: Literal["strategy", "fixed", "fraction", "risk", "atr", "kelly"] = "strategy"
    qty: float | None = Field(None, gt=0, le=MAX_QTY)     # fixed
    fraction: float = Field(0.02, gt=0, le=10)             # fraction: notional as a fraction of equity
    risk: float = Field(0.005, gt=0, le=1)                 # risk: equity lost if the stop is hit
    atr_period: int = Field(14, ge=2, le=100_000)
    atr_multiple: float = Field(2.0, gt=0, le=1000)        # atr: the stop distance in ATRs
    kelly_fraction: float = Field(0.5, gt=0, le=1)          # kelly: of the full Kelly bet
    kelly_cap: float = Field(0.05, gt=0, le=1)             # kelly: notional cap, fraction of equity
    kelly_min_trades: int = Field(20, ge=1, le=MAX_COUNT)  # kelly: below this, size as `fraction`


class ExitsConfig(_Section):
    """Brackets attached to every entry: stop-loss and take-profit orders (one cancels the other), trailing stop."""

    stop_loss_pct: float | None = Field(None, gt=0, lt=1)
    take_profit_pct: float | None = Field(None, gt=0, le=10)
    trailing_pct: float | None = Field(None, gt=0, lt=1)


class InstrumentConfig(_Section):
    """A symbol's grid, minimums, fees and simulated market; cross-field rules are in parse_config.

    The simulated venue needs tick_size and lot_size; a ccxt venue takes the grid and minimums from the exchange
    (given ones must agree with it) and the fees given here over the exchange's.
    """

    symbol: str
    tick_size: float | None = Field(None, ge=MIN_STEP, le=MAX_PRICE)
    lot_size: float | None = Field(None, ge=MIN_STEP, le=MAX_QTY)
    min_qty: float = Field(0.0, ge=0, le=MAX_QTY)
    min_notional: float = Field(0.0, ge=0, le=MAX_NOTIONAL)
    maker_fee: float = Field(0.0002, ge=-0.01, le=0.1)
    taker_fee: float = Field(0.0005, ge=0, le=0.1)
    start_price: float = Field(100.0, gt=0, le=MAX_PRICE)
    daily_vol: float = Field(0.04, gt=0, le=2)
    spread_bps: float = Field(2.0, gt=0, le=1000)
    depth: float = Field(1.0, gt=0, le=MAX_QTY)

    @field_validator("symbol")
    @classmethod
    def _symbol_shape(cls, v: str) -> str:
        if not _SYMBOL.fullmatch(v):
            raise ValueError("must look like BASE/QUOTE in capitals A-Z and digits, each at most 20, e.g. BTC/USDT")
        return v


class StrategyConfig(_Section):
    name: str
    kind: str = Field(max_length=1000)   # a name, "path/to/file.py:Class" or "package.module:Class"
    symbols: list[str] = Field(min_length=1)
    timeframe: str = Field("1m", max_length=16)
    # several timeframes built from the same data: bars of each, decisions on the first (which is `timeframe`)
    timeframes: list[str] = Field(default_factory=list, max_length=8)
    params: dict[str, Any] = Field(default_factory=dict)
    sizing: SizingConfig = SizingConfig()
    exits: ExitsConfig = ExitsConfig()
    phase: int | None = Field(None, ge=1, le=1000)   # a [[phases]] entry; none = not phased

    @field_validator("name")
    @classmethod
    def _name_shape(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError("must start with a letter A-Z or a-z and use only those, digits, _ or - (at most 40)")
        return v

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str, info: ValidationInfo) -> str:
        # a file path is kept absolute: the session stores this config, and a resume must find the file from any folder
        kind = absolute_kind(v, (info.context or {}).get("base_dir"))
        try:
            strategy_class(kind)
        except UnknownStrategy as exc:
            raise ValueError(f"is not a known strategy; known: {', '.join(exc.known)}; {OTHER_SOURCES}") from None
        except KeyError as exc:  # StrategyLoadError: the file, the line and the exception
            raise ValueError(str(exc.args[0])) from None
        return kind

    @model_validator(mode="after")
    def _decision_timeframe(self) -> StrategyConfig:
        """timeframes' first is the timeframe decisions are made on; a `timeframe` given as well must be it."""
        if self.timeframes:
            first = self.timeframes[0]
            if "timeframe" in self.model_fields_set and self.timeframe != first:
                raise ValueError(f"timeframe {self.timeframe!r} is not the first of timeframes ({first!r}): "
                                 "decisions are made on the first; give one or the other")
            self.timeframe = first
        return self

    @field_validator("timeframe")
    @classmethod
    def _timeframe_shape(cls, v: str) -> str:
        return _timeframe(v)

    @field_validator("timeframes")
    @classmethod
    def _timeframes_shape(cls, v: list[str]) -> list[str]:
        for tf in v:
            _timeframe(tf)
        if len(set(v)) != len(v):
            raise ValueError("lists a timeframe twice")
        return v


def _timeframe(v: str) -> str:
    if timeframe_ns(v) > MAX_TIMEFRAME_NS or not v.isalnum():
        raise ValueError("must be a whole number followed by s, m, h or d, at most 31d (e.g. '1m')")
    return v


class AppConfig(_Section):
    """A whole config; parse_config also checks the rules that tie keys together (see _cross_field_problems)."""

    session: SessionConfig = SessionConfig()
    venue: VenueConfig = VenueConfig()
    store: StoreConfig = StoreConfig()
    risk: RiskConfig = RiskConfig()
    breakers: BreakersConfig = BreakersConfig()
    validation: ValidationConfig = ValidationConfig()
    promotion: PromotionConfig = PromotionConfig()
    console: ConsoleConfig = ConsoleConfig()
    phases: list[PhaseConfig] = Field(default_factory=list)
    instruments: list[InstrumentConfig] = Field(min_length=1)
    strategies: list[StrategyConfig] = Field(default_factory=list)


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
    except ValueError as exc:  # TOMLDecodeError, and an integer too long to convert
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    return parse_config(data, str(path), base_dir=path.parent)


def parse_config(data: Mapping[str, Any], source: str = "config", stored: bool = False,
                 base_dir: Path | None = None) -> AppConfig:
    """Validate config data; raises ConfigError listing every problem: field, cross-field and strategy parameter.

    base_dir: the folder a strategy's relative file path is in (the config file's; None: the current directory).

    stored: a config a session saved, read back (resume, validate, commands). It ran under the rules of the
    paperdesk that saved it, so types are read as that version did (10.0 where a whole number is expected) and
    cross-field rules added since are not applied; strategy parameters come back in their declared types.
    """
    config: AppConfig | None = None
    errors: list[Any] = []
    try:
        config = AppConfig.model_validate(data, strict=False if stored else None, context={"base_dir": base_dir})
    except ValidationError as exc:
        errors = exc.errors()
    problems = [_describe(source, err) for err in errors]
    passed = _Passed(data, {_clean(err["loc"]) for err in errors})
    if not stored:
        for loc, value, msg in _cross_field_problems(passed):
            shown = "" if value is _UNSET else f" = {_shown(value)}"
            problems.append(f"{source}: {key_path(loc)}{shown}: {msg}")
    for index in range(passed.count("strategies")):
        kind, params = passed.get("strategies", index, "kind"), passed.get("strategies", index, "params")
        if kind is _UNSET or params is _UNSET:
            continue
        model = strategy_class(absolute_kind(kind, base_dir)).Params
        try:
            checked = model.model_validate(params, strict=False if stored else None)
        except ValidationError as exc:
            for err in exc.errors():
                located = dict(err, loc=("strategies", index, "params", *err["loc"]))
                problems.append(_describe(source, located, model))
            continue
        if stored and config is not None:
            config.strategies[index].params = checked.model_dump(include=set(params))
    if problems or config is None:
        raise ConfigError("\n".join(problems))
    return config


def key_path(loc: tuple[Any, ...]) -> str:
    """('strategies', 0, 'params', 'fast') -> 'strategies[0].params.fast'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ---- rules that tie keys together ---------------------------------------------------------------------

_UNSET: Any = object()


def _clean(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(p for p in loc if not (isinstance(p, str) and "[" in p))  # drop union tags


class _Passed:
    """Raw config values at key paths that passed their own field checks; absent keys take the model default."""

    def __init__(self, data: Any, failed: set[tuple[Any, ...]]) -> None:
        self.data = data
        self.failed = failed

    def raw(self, *loc: Any) -> Any:
        """The value at loc whatever its parts hold; _UNSET if it or a table around it failed."""
        if any(loc[:len(f)] == f for f in self.failed):
            return _UNSET
        value = self.data
        for part in loc:
            if isinstance(part, int):
                if not (isinstance(value, list) and part < len(value)):
                    return _UNSET
                value = value[part]
            elif isinstance(value, Mapping) and part in value:
                value = value[part]
            else:
                return _default(loc)
        return value

    def get(self, *loc: Any) -> Any:
        """The value at loc, or _UNSET when anything in it failed too."""
        if any(f[:len(loc)] == loc for f in self.failed):
            return _UNSET
        return self.raw(*loc)

    def count(self, *loc: Any) -> int:
        value = self.raw(*loc)
        return len(value) if isinstance(value, list) else 0


def _default(loc: tuple[Any, ...]) -> Any:
    """The model default at a key path, _UNSET for a required key."""
    model: Any = AppConfig
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return _UNSET
        model = _inner(field.annotation)
    if field is None or field.is_required():
        return _UNSET
    return field.get_default(call_default_factory=True)


def _cross_field_problems(passed: _Passed) -> Iterator[tuple[tuple[Any, ...], Any, str]]:
    """(key path, value, what is allowed) for each rule broken; a rule is checked when the keys it reads passed."""
    kind = passed.get("venue", "kind")
    yield from _venue_problems(passed, kind)
    symbols: dict[str, int] = {}
    for i in range(passed.count("instruments")):
        at = ("instruments", i)
        symbol = passed.get(*at, "symbol")
        if symbol is not _UNSET:
            if symbol in symbols:
                yield (*at, "symbol"), symbol, f"listed more than once (first at instruments[{symbols[symbol]}].symbol)"
            else:
                symbols[symbol] = i
        if kind == "simulated":
            yield from _instrument_problems(passed, at)
        elif kind == "ccxt":
            yield from _ccxt_instrument_problems(passed, at)
    known = ", ".join(symbols)

    n = passed.count("instruments")
    correlation = passed.get("venue", "correlation") if kind == "simulated" else _UNSET
    if n > 2 and correlation is not _UNSET and 1 + (n - 1) * correlation <= 1e-6:
        yield ("venue", "correlation"), correlation, (
            f"with {n} instruments must be above -1/({n} - 1) = {-1 / (n - 1):.4g}: "
            f"{n} symbols cannot all move against one another that strongly")

    phases: dict[int, int] = {}
    for i in range(passed.count("phases")):
        phase = passed.get("phases", i, "phase")
        if phase is _UNSET:
            continue
        if phase in phases:
            yield ("phases", i, "phase"), phase, f"defined more than once (first at phases[{phases[phase]}].phase)"
        else:
            phases[phase] = i

    names: dict[str, int] = {}
    for j in range(passed.count("strategies")):
        at = ("strategies", j)
        name = passed.get(*at, "name")
        if name is not _UNSET:
            if name in names:
                yield (*at, "name"), name, f"used more than once (first at strategies[{names[name]}].name)"
            else:
                names[name] = j
        seen: dict[str, int] = {}
        for k in range(passed.count(*at, "symbols")):
            symbol = passed.get(*at, "symbols", k)
            if symbol is _UNSET:
                continue
            if symbol in seen:
                first = f"{key_path(at)}.symbols[{seen[symbol]}]"
                yield (*at, "symbols", k), symbol, f"listed more than once (first at {first})"
            elif symbols and symbol not in symbols:  # no instrument passed: its own errors say why
                yield (*at, "symbols", k), symbol, f"is not an instrument; instruments are {known}"
            seen.setdefault(symbol, k)
        phase = passed.get(*at, "phase")
        if phase is not _UNSET and phase is not None and phase not in phases:
            defined = ", ".join(f"{n} (phases[{i}].phase)" for n, i in sorted(phases.items()))
            yield (*at, "phase"), phase, f"no such [[phases]] entry; defined: {defined or 'none'}"
        if passed.get(*at, "sizing", "mode") == "fixed" and passed.get(*at, "sizing", "qty") is None:
            yield (*at, "sizing", "qty"), _UNSET, \
                f"required key is missing: {key_path(at)}.sizing.mode 'fixed' needs qty"

    for key in ("max_order_qty", "max_position_qty"):
        limits = passed.raw("risk", key)
        for symbol in limits if isinstance(limits, Mapping) else ():
            if symbols and symbol not in symbols:
                yield ("risk", key, symbol), limits[symbol], f"{symbol!r} is not an instrument; instruments are {known}"
    min_samples, window = passed.get("risk", "min_samples"), passed.get("risk", "window")
    if _UNSET not in (min_samples, window) and min_samples > window:
        yield ("risk", "min_samples"), min_samples, f"must be at most risk.window = {window}, the samples kept"
    short, long = passed.get("breakers", "volatility_short_samples"), passed.get("breakers", "volatility_long_samples")
    if _UNSET not in (short, long) and short >= long:
        yield ("breakers", "volatility_short_samples"), short, \
            f"must be smaller than breakers.volatility_long_samples = {long}"


def _venue_problems(passed: _Passed, kind: Any) -> Iterator[tuple[tuple[Any, ...], Any, str]]:
    """Each venue kind takes its own keys only; a ccxt venue names its exchange and runs in real time."""
    if kind is _UNSET:
        return
    given = passed.raw("venue")
    given = given if isinstance(given, Mapping) else {}
    for name in VENUE_KEYS[_other_kind(kind)]:
        if name in given:
            yield ("venue", name), given[name], f"applies to venue.kind = {_other_kind(kind)!r} only, not {kind!r}"
    if kind != "ccxt":
        return
    if passed.get("venue", "exchange") is None:
        yield ("venue", "exchange"), _UNSET, "required key is missing: a ccxt venue names its exchange, e.g. 'binance'"
    speed = passed.get("venue", "speed")
    if "speed" in given and speed is not _UNSET and speed != 1:
        yield ("venue", "speed"), speed, "must be 1 for a ccxt venue: a real exchange's market runs in real time"
    exchange = passed.get("venue", "exchange")
    if passed.get("venue", "mode") == "sandbox" and isinstance(exchange, str) and exchange not in SANDBOX_EXCHANGES:
        yield ("venue", "mode"), "sandbox", (f"sandbox mode is built for {', '.join(SANDBOX_EXCHANGES)} only (its "
                                             f"testnet's order API and user-data stream); for {exchange} use "
                                             "mode = 'paper' (its live books, our fills)")
    if passed.get("venue", "mode") != "sandbox":
        for name in ("key_env", "secret_env"):
            value = passed.get("venue", name)
            if value not in (_UNSET, None):
                yield ("venue", name), _UNSET, "applies to venue.mode = 'sandbox' only: paper mode uses no keys"


def _instrument_problems(passed: _Passed, at: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any, str]]:
    """An instrument of the simulated venue: its grid is the config's, and its market must be tradable on it."""
    key = key_path(at)
    for name in ("tick_size", "lot_size"):
        if passed.get(*at, name) is None:
            yield (*at, name), _UNSET, "required key is missing (the simulated venue trades on the config's grid)"
    tick, lot, min_qty, min_notional, price, depth = (
        passed.get(*at, name) for name in ("tick_size", "lot_size", "min_qty", "min_notional", "start_price", "depth"))
    # relative tolerance: 100 x 0.07 is 7.000000000000001, and a price of exactly 100 ticks is allowed
    if _UNSET not in (price, tick) and tick is not None and price < MIN_TICKS * tick * (1 - 1e-9):
        yield (*at, "start_price"), price, (
            f"must be at least {MIN_TICKS} ticks: {MIN_TICKS} x {key}.tick_size {tick!r} = {MIN_TICKS * tick:.6g} "
            f"(so the one-tick spread stays small; it need not be a multiple of the tick)")
        price = _UNSET  # the min_notional rule would only repeat this problem
    floors = {name: v for name, v in (("lot_size", lot), ("min_qty", min_qty)) if v not in (_UNSET, None)}
    if depth is not _UNSET and floors and depth < max(floors.values()):
        yield (*at, "depth"), depth, (
            f"must be at least {' and '.join(f'{key}.{name} = {v!r}' for name, v in floors.items())}: "
            f"a book level holds at least the smallest order")
    if _UNSET not in (min_notional, depth, price) and min_notional > depth * price:
        yield (*at, "min_notional"), min_notional, (
            f"must be at most {key}.depth x {key}.start_price = {depth * price:.6g}: "
            f"an order one book level deep must be allowed")


SYNTHETIC_MARKET_KEYS = ("start_price", "daily_vol", "spread_bps", "depth")


def _ccxt_instrument_problems(passed: _Passed, at: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any, str]]:
    """An instrument of a ccxt venue: the exchange's market is the market, so the synthetic one's keys are refused
    (a stored config holds their defaults, which are accepted)."""
    for name in SYNTHETIC_MARKET_KEYS:
        value = passed.get(*at, name)
        if value is not _UNSET and value != _default(("instruments", name)):
            yield (*at, name), value, ("describes the simulated market; a ccxt venue trades on the exchange's "
                                       "(remove it)")


# ---- messages -----------------------------------------------------------------------------------------

def _describe(source: str, err: Mapping[str, Any], params_model: type[BaseModel] | None = None) -> str:
    loc = _clean(err["loc"])
    key = key_path(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], params_model)
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{source}: {key}: unknown key{hint}"
    if err["type"] == "missing":
        return f"{source}: {key}: required key is missing"
    value = err.get("input")
    msg = _message(err["type"], value, err["msg"].removeprefix("Value error, "))
    if loc in UNSHOWN_KEYS:
        return f"{source}: {key}: {msg}"
    bounds = _bounds(loc, params_model) if err["type"] in _NUMBER_ERRORS else ""
    if bounds:
        msg = f"{msg}; allowed: {bounds}"
    if not loc:
        return f"{source}: {msg}"
    if err["type"] == "value_error" and isinstance(value, Mapping):  # a rule over a whole table names its keys
        return f"{source}: {key}: {msg}"
    return f"{source}: {key} = {_shown(value)}: {msg}"


_NUMBER_ERRORS = {"finite_number", "float_type", "int_type"}


def _message(kind: str, value: Any, pydantic_msg: str) -> str:
    """pydantic's message, reworded where it would puzzle someone editing a TOML file."""
    what = _what(value)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "finite_number" or (kind == "float_type" and number):
        return "must be a finite number, not inf or nan (1e309 and beyond read as inf)"
    if kind == "float_type":
        return f"must be a number, not {what}"
    if kind == "int_type":
        if isinstance(value, float) and value.is_integer():
            return "must be a whole number, written without a decimal point (3, not 3.0)"
        return f"must be a whole number, not {what}"
    if kind == "bool_type":
        return f"must be true or false, not {what}"
    if kind == "string_type":
        return f"must be a string in quotes, not {what}"
    if kind == "list_type":
        return f"must be a list [...], not {what}"
    if kind in ("dict_type", "model_type"):
        return f"must be a table, not {what}"
    return pydantic_msg


def _what(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, dt.date | dt.time):
        return "a date or time"
    return "null" if value is None else type(value).__name__


def _shown(value: Any) -> str:
    """repr, cut short for a long value."""
    try:
        text = repr(value)
    except ValueError:  # an integer with more digits than Python will print
        return f"<an integer of {value.bit_length()} bits>"
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _bounds(loc: tuple[Any, ...], params_model: type[BaseModel] | None) -> str:
    """'> 0 and <= 1e+12' for the field at loc, from its constraints."""
    field = _field_at(loc, params_model)
    if field is None:
        return ""
    parts = []
    for item in field.metadata:
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(item, attr, None)
            if bound is not None:
                parts.append(f"{op} {bound:g}" if isinstance(bound, float) else f"{op} {bound}")
    return " and ".join(parts)


def _field_at(loc: tuple[Any, ...], params_model: type[BaseModel] | None) -> Any:
    names = [p for p in loc if not isinstance(p, int)]
    model: Any = AppConfig
    if params_model is not None and names[:2] == ["strategies", "params"]:
        model, names = params_model, names[2:]
    field = None
    for part in names:
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return None
        model = _inner(field.annotation)
    return field


def _allowed_keys(loc: tuple[Any, ...], params_model: type[BaseModel] | None) -> list[str]:
    """Field names of the model a location points into, for 'unknown key' hints."""
    if params_model is not None and len(loc) >= 3 and loc[2] == "params":
        return list(params_model.model_fields)
    model: Any = AppConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return []
        model = _inner(field.annotation)
    return list(model.model_fields) if _is_model(model) else []


def _inner(annotation: Any) -> Any:
    """list[X], X | None -> X."""
    args = getattr(annotation, "__args__", ())
    return args[0] if args else annotation


def _is_model(model: Any) -> bool:
    return isinstance(model, type) and issubclass(model, BaseModel)
