"""`paperdesk new-strategy` (a template and its test) and `paperdesk check-strategy` (load, validate, try out).

Module-level imports stay light: console/cli.py imports this module to build its parser, for every command.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from engine.config import AppConfig
    from engine.core import Engine
    from engine.model.market import MarketEvent
    from engine.strategy.base import Strategy

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_BARS = 500
SHOWN_DECISIONS = 5
MARKET_START_NS = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC: aligned to every timeframe up to a day
STEPS_PER_BAR = 6                        # market updates per bar of the strategy's shortest timeframe
MAX_STEPS = 20_000                       # a daily strategy's trial still takes seconds, with fewer updates a bar
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # engine/ and console/ are in it: not the strategy's code


def add_strategy_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add new-strategy and check-strategy to the `paperdesk` subcommands."""
    new = sub.add_parser("new-strategy", help="write a commented strategy template and its test, ready to edit")
    new.add_argument("name", help="the strategy's name: lower case letters, digits and _, e.g. breakout")
    new.add_argument("--dir", type=Path, default=Path("."), help="folder to write NAME.py and test_NAME.py in "
                                                                 "(default: the current one; made if missing)")
    new.set_defaults(func=cmd_new_strategy)

    check = sub.add_parser("check-strategy", help="load the config's strategies, show their parameters and run them "
                                                  "over the built-in simulated market, listing their decisions")
    check.add_argument("--config", type=Path, help="config file (default ./config.toml, else the built-in one)")
    check.add_argument("--strategy", help="one strategy of the config, by name (default: all of them)")
    check.add_argument("--bars", type=_bar_count, default=DEFAULT_BARS,
                       help=f"bars of each strategy's timeframe to run over (default {DEFAULT_BARS})")
    check.set_defaults(func=cmd_check_strategy)


def _bar_count(text: str) -> int:
    try:
        bars = int(text)
    except ValueError:
        bars = 0
    if not 1 <= bars <= 100_000:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of bars from 1 to 100000")
    return bars


# ---- new-strategy ------------------------------------------------------------------------------------------------

def cmd_new_strategy(args: argparse.Namespace) -> int:
    """Write DIR/NAME.py and DIR/test_NAME.py; refuse (exit 2) if either exists or NAME cannot be a module."""
    from console.strategy_template import strategy_text, test_text

    name: str = args.name
    if not _NAME.fullmatch(name) or keyword.iskeyword(name) or name.startswith("test"):
        return _refuse(f"new-strategy {name!r}: a strategy's name starts with a letter a-z and has only a-z, 0-9 and "
                       "_ (at most 40), is not a Python keyword and does not start with 'test'; e.g. breakout")
    folder: Path = args.dir
    strategy_file, test_file = folder / f"{name}.py", folder / f"test_{name}.py"
    existing = [str(p) for p in (strategy_file, test_file) if p.exists()]
    if existing:
        return _refuse(f"new-strategy: {' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                       "nothing was written (pick another name or --dir, or move the file away)")
    cls = "".join(part.capitalize() for part in name.split("_"))
    kind = f"{strategy_file.as_posix()}:{cls}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with strategy_file.open("x", encoding="utf-8") as out:  # "x": never replaces a file made meanwhile
            out.write(strategy_text(name, cls, kind))
        with test_file.open("x", encoding="utf-8") as out:
            out.write(test_text(name, cls, test_file.as_posix()))
    except OSError as exc:
        return _refuse(f"new-strategy: cannot write {exc.filename or folder}: {exc.strerror or exc}")
    print(f"wrote {strategy_file} (the strategy, class {cls}) and {test_file} (its test)")
    print("use it from a config file (the path relative to the config file's folder):")
    print(f'  [[strategies]]\n  name = "{name}"\n  kind = "{kind}"\n  symbols = ["BTC/USDT"]')
    print(f"then: paperdesk check-strategy --config config.toml --strategy {name}")
    print(f"      {Path(sys.executable).name} -m pytest {test_file}")
    return EXIT_OK


# ---- check-strategy ----------------------------------------------------------------------------------------------

def cmd_check_strategy(args: argparse.Namespace) -> int:
    """Exit 0: every strategy loaded and ran; 1: one FAILED while running; 2: the config or a strategy did not load."""
    from engine.config import ConfigError, load_config

    try:
        config = load_config(_config_path(args.config))
    except ConfigError as exc:
        return _refuse(str(exc))
    chosen = [i for i, s in enumerate(config.strategies) if args.strategy is None or s.name == args.strategy]
    if not chosen:
        names = ", ".join(s.name for s in config.strategies) or "none"
        wanted = f"no strategy named {args.strategy!r}" if args.strategy else "no strategies"
        return _refuse(f"check-strategy: the config has {wanted} (its strategies: {names})")
    ran = [_check_one(config, index, args.bars) for index in chosen]
    return EXIT_OK if all(ran) else EXIT_FAILED


class _Failure(NamedTuple):
    error: str   # as the engine recorded it: "ZeroDivisionError: ..."
    where: str   # file:line in the strategy's code, or ""


def _check_one(config: AppConfig, index: int, bars: int) -> bool:
    """Print one strategy's class, params and trial; False if it failed while running."""
    from engine.strategy.loader import strategy_fingerprint
    from engine.strategy.registry import strategy_class

    s = config.strategies[index]
    cls = strategy_class(s.kind)  # the config loaded it already: this is the same class
    print(f"{s.name}: {s.kind} -> class {cls.__qualname__}, loaded")
    failures: list[_Failure] = []
    try:
        strategy = cls(s.name, s.symbols, s.timeframe, s.params, timeframes=s.timeframes)
        print(f"  symbols {', '.join(s.symbols)}; timeframes {', '.join(strategy.timeframes)} (decisions on "
              f"{strategy.timeframe}); fingerprint {strategy_fingerprint(strategy)[:16]}")
        print(f"  params ({cls.Params.__name__}):" if cls.Params.model_fields else "  params: none")
        for line in _param_lines(strategy):
            print(f"    {line}")
        with _failures_logged(failures, cls):
            engine = run_trial(strategy, config, bars)
    except Exception as exc:  # raised outside the callbacks the engine guards: __init__, on_start, the engine's setup
        import traceback

        frames = [(f.filename, f.lineno or 0) for f in traceback.extract_tb(exc.__traceback__)]
        where = _user_frame(frames, _source_file(cls))
        print(f"  FAILED before its first bar: {type(exc).__name__}: {exc}" + (f" (at {where})" if where else ""))
        return False
    _print_trial(engine, strategy, bars, failures)
    return strategy.status.value == "RUNNING"


def _param_lines(strategy: Strategy) -> list[str]:
    """'fast: int = 5 (default 10; >= 1 and <= 10000) bars in the fast average' per parameter."""
    values = strategy.params.model_dump()
    out = []
    for name, field in type(strategy.params).model_fields.items():
        notes = [f"default {_shown(field.default)}" if not field.is_required() else "required"]
        bounds = _bounds(field)
        if bounds:
            notes.append(bounds)
        about = f" {field.description}" if field.description else ""
        out.append(f"{name}: {_type_name(field.annotation)} = {_shown(values.get(name))} ({'; '.join(notes)}){about}")
    return out


def _bounds(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for attr, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "length >="),
                         ("max_length", "length <=")):
            bound = getattr(item, attr, None)
            if bound is not None:
                parts.append(f"{op} {bound:g}" if isinstance(bound, float) else f"{op} {bound}")
    return " and ".join(parts)


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _print_trial(engine: Engine, strategy: Strategy, bars: int, failures: list[_Failure]) -> None:
    from engine.clock import utc_text
    from engine.model.decision import Signal

    decisions = [d for d in engine.decisions if d.strategy == strategy.name]
    orders = [o for o in engine.orders.values() if o.strategy == strategy.name]
    fills = sum(1 for f in engine.fills if f.client_id in {o.client_id for o in orders})
    print(f"  ran over {bars} bars of {strategy.timeframe} of the simulated market from {utc_text(MARKET_START_NS)} "
          f"UTC: {strategy.status.value}")
    if strategy.error:
        where = next((f.where for f in failures if f.error == strategy.error), "")
        print(f"  FAILED: {strategy.error}" + (f" (at {where})" if where else ""))
    counts = Counter(d.signal.value for d in decisions)
    shown = ", ".join(f"{signal} {n}" for signal, n in sorted(counts.items()))
    print(f"  decisions: {len(decisions)}" + (f" ({shown})" if shown else "") + f"; orders {len(orders)}, "
          f"fills {fills}")
    if not decisions:
        print("  it made no decision: does it override on_bar (or on_tick), and end each with target_position, buy, "
              "sell or hold?")
        return
    acting = [d for d in decisions if d.signal is not Signal.HOLD]
    first = (acting or decisions)[:SHOWN_DECISIONS]
    print(f"  first {len(first)} {'trading ' if acting else ''}decisions:")
    for d in first:
        target = "" if d.target is None else f" {d.target:g}"
        indicators = ", ".join(f"{k}={v:.6g}" for k, v in d.indicators.items())
        print(f"    {utc_text(d.ts)} {d.symbol} {d.signal.value}{target}: {d.reason or '(no reason given)'}"
              + (f" [{indicators}]" if indicators else ""))


# ---- the trial: a strategy over the built-in simulated market ---------------------------------------------------

def run_trial(strategy: Strategy, config: AppConfig | None = None, bars: int = DEFAULT_BARS) -> Engine:
    """strategy run through the engine (config's instruments, risk and fill model; default: the built-in config)
    over `bars` bars of its timeframe of the simulated market config describes; returns the engine, decisions,
    orders and fills in it. A strategy that raises in a callback is FAILED (strategy.status), as in a session."""
    from math import gcd

    from engine.clock import SimClock
    from engine.data.bars import timeframe_ns
    from engine.replay import replay
    from engine.runtime import build_engine
    from engine.venues import build_market

    config = _with_grid(config if config is not None else _default_config())
    engine = build_engine(config, SimClock(MARKET_START_NS), [strategy])
    market = build_market(config)
    span = bars * timeframe_ns(strategy.timeframe)
    shortest = gcd(*(timeframe_ns(tf) for tf in strategy.timeframes))
    step = max(shortest // STEPS_PER_BAR, span // MAX_STEPS, 1)
    end = MARKET_START_NS + span

    wanted = set(strategy.symbols)

    def events() -> Iterator[MarketEvent]:
        ts = MARKET_START_NS
        while ts < end:
            nxt = min(ts + step, end)  # the last update lands on the end: it closes the last bar
            # every symbol moves, as they are correlated; only the strategy's reach the engine, which is faster
            yield from (e for e in market.step(nxt, (nxt - ts) / 1e9) if e.symbol in wanted)
            ts = nxt

    replay(engine, events())
    return engine


def _default_config() -> AppConfig:
    from console.cli import DEFAULT_CONFIG
    from engine.config import load_config

    return load_config(DEFAULT_CONFIG)


def _with_grid(config: AppConfig) -> AppConfig:
    """A ccxt venue's instruments get their grid from the exchange; here, one that suits the simulated prices."""
    instruments = [i if i.tick_size is not None and i.lot_size is not None
                   else i.model_copy(update={"tick_size": i.tick_size or i.start_price / 10_000,
                                             "lot_size": i.lot_size or 1e-6})
                   for i in config.instruments]
    return config.model_copy(update={"instruments": instruments})


@contextmanager
def _failures_logged(failures: list[_Failure], cls: type) -> Iterator[None]:
    """Keeps the engine's 'strategy X failed' records, whose traceback says where in the strategy it raised."""
    import logging

    source = _source_file(cls)

    class FailureLog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            frames = [(f, int(n)) for f, n in re.findall(r'File "([^"]+)", line (\d+)', text)]
            failures.append(_Failure(text.rstrip().rpartition("\n")[2], _user_frame(frames, source)))

    handler = FailureLog(logging.ERROR)
    logger = logging.getLogger("paperdesk.engine")
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False  # the trial reports the failure itself, once
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _user_frame(frames: list[tuple[str, int]], source: str | None) -> str:
    """'file:line' where the strategy's code raised: the deepest frame in its own file, else outside paperdesk."""
    own = (str(PACKAGE_ROOT / "engine"), str(PACKAGE_ROOT / "console"))
    mine = [f for f in frames if f[0] == source] or [f for f in frames if not f[0].startswith(own)]
    return f"{mine[-1][0]}:{mine[-1][1]}" if mine else ""


def _source_file(cls: type) -> str | None:
    import inspect

    try:
        return inspect.getsourcefile(cls)
    except TypeError:  # a class with no file (defined interactively)
        return None


# ---- shared ------------------------------------------------------------------------------------------------------

def _config_path(path: Path | None) -> Path:
    if path is not None:
        return path
    from console.cli import DEFAULT_CONFIG

    return Path("config.toml") if Path("config.toml").is_file() else DEFAULT_CONFIG


def _refuse(message: str) -> int:
    print(f"paperdesk: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
