"""The `paperdesk` command. Bad input prints one clear message per problem and exits 2."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.backtest import BacktestInputError, run_backtest
from engine.config import AppConfig, ConfigError, load_config
from engine.data.bar_file import BarFileError
from engine.data.recording import RecordingError, is_recording

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"
EXIT_BAD_INPUT = 2


class InputError(Exception):
    """A command-line problem to report without a traceback."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, InputError, BarFileError, RecordingError, BacktestInputError) as exc:
        print(f"paperdesk: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paperdesk", description="Paper-trading operator console.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start a paper session (the console, or headless with --no-ui)")
    run.add_argument("--config", type=Path, help=f"config file (default ./config.toml, else {DEFAULT_CONFIG})")
    run.add_argument("--no-ui", action="store_true", help="run without the console, printing status lines")
    run.add_argument("--duration", type=float, help="stop after this many seconds (default: run until stopped)")
    run.add_argument("--record", type=Path, help="write the market data the session sees to this .jsonl file")
    run.set_defaults(func=_cmd_run)

    bt = sub.add_parser("backtest", help="replay bars (CSV) or a recorded session (.jsonl) through the engine")
    bt.add_argument("--data", type=Path, required=True, help="OHLCV CSV file or a recording made with --record")
    bt.add_argument("--strategy", help="strategy kind to run (default: the strategies in the config)")
    bt.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="strategy parameter")
    bt.add_argument("--symbol", help="symbol of the data (default: the config's first instrument)")
    bt.add_argument("--timeframe", help="bar timeframe, e.g. 1m (default: inferred from the file)")
    bt.add_argument("--config", type=Path, help="config for instruments, fees and cash")
    bt.add_argument("--cash", type=float, help="starting cash (default: the config's)")
    bt.set_defaults(func=_cmd_backtest)
    return parser


def _config(path: Path | None) -> AppConfig:
    if path is None:
        path = Path("config.toml") if Path("config.toml").is_file() else DEFAULT_CONFIG
    return load_config(path)


def _cmd_run(args: argparse.Namespace) -> int:
    if args.duration is not None and not args.duration > 0:
        raise InputError(f"--duration {args.duration:g}: must be a positive number of seconds")
    config = _config(args.config)
    if args.record is not None:
        _check_writable(args.record)
    if args.no_ui:
        from console.headless import run_headless

        return asyncio.run(run_headless(config, args.duration, args.record))
    from console.app import run_console

    return asyncio.run(run_console(config, args.duration, args.record))


def _check_writable(path: Path) -> None:
    """Refuse a --record path before trading starts rather than fail mid-session."""
    if not is_recording(path):
        raise InputError(f"--record {path}: name the file *.jsonl (paperdesk backtest recognises recordings by it)")
    if path.exists():
        raise InputError(f"--record {path}: the file exists; choose a new name (nothing is overwritten)")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise InputError(f"--record {path}: the directory {parent} does not exist")
    try:
        path.touch(exist_ok=False)
        path.unlink()
    except OSError as exc:
        raise InputError(f"--record {path}: cannot write there ({exc.strerror or exc})") from None


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """['fast=10', 'k=2.5', 'name=x'] -> {'fast': 10, 'k': 2.5, 'name': 'x'} (TOML values, else strings)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--param {pair!r}: expected KEY=VALUE, e.g. --param fast=10")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        params[key.strip()] = value
    return params


def _cmd_backtest(args: argparse.Namespace) -> int:
    from engine.strategy.registry import strategy_class

    config = _config(args.config)
    if args.cash is not None:
        if not args.cash > 0:
            raise InputError(f"--cash {args.cash:g}: must be positive")
        config = config.model_copy(update={"session": config.session.model_copy(update={"starting_cash": args.cash})})
    params = parse_params(args.param)
    if args.param and not args.strategy:
        raise InputError("--param needs --strategy (the config's strategies take their params from the config)")
    if args.strategy:
        try:
            cls = strategy_class(args.strategy)
        except KeyError as exc:
            raise InputError(f"--strategy: {exc.args[0]}") from None
        try:
            cls.Params(**params)
        except ValidationError as exc:
            raise InputError("\n".join(_param_problem(e, cls.Params.model_fields) for e in exc.errors())) from None
    result = run_backtest(config, args.data, strategy_kind=args.strategy, params=params,
                                          symbol=args.symbol, timeframe=args.timeframe)
    for line in result.lines():
        print(line)
    return 0


def _param_problem(err: dict[str, Any], known: dict[str, Any]) -> str:
    key = ".".join(map(str, err["loc"]))
    if err["type"] == "extra_forbidden":
        return f"--param {key}: unknown parameter; known: {', '.join(known)}"
    if not key:
        return f"--param: {err['msg'].removeprefix('Value error, ')}"
    return f"--param {key}={err['input']!r}: {err['msg']}"


if __name__ == "__main__":
    sys.exit(main())
