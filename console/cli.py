"""The `paperdesk` command. Bad input prints one clear message per problem and exits 2.

SIGINT, SIGTERM and SIGHUP end any command cleanly, from the first line of main: `run` stops its session and
prints the summary (exit 0), or, before it wrote anything, says it was stopped during start-up and nothing was
changed (exit 128 + the signal's number, as a shell reports a signal: 130, 143, 129); another command stops where
it is and says so (the same exit code). Heavy imports happen inside main, after its handlers are in place: keep
module-level imports light.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

    from engine.config import AppConfig

# errors a user can fix, from modules imported only by the commands that need them (so `paperdesk halt`
# starts in a fraction of the time pandas takes to import); a module not imported cannot have raised
_LAZY_INPUT_ERRORS = (("engine.config", "ConfigError"), ("engine.store.database", "StoreError"),
                      ("engine.backtest", "BacktestInputError"), ("engine.data.bar_file", "BarFileError"),
                      ("engine.data.recording", "RecordingError"))  # ValidationInputError is a StoreError

# the default session ships inside this package (package data); in a checkout console/config.toml is a link to
# the repo's config.toml, resolved here, so `make run` reads (and keeps its database beside) the file a user edits
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = (PACKAGE_DIR / "config.toml").resolve()
EXIT_BAD_INPUT = 2


class InputError(Exception):
    """A command-line problem to report without a traceback."""


EXIT_SIGNAL_BASE = 128  # stopped by signal N before the command finished: exit 128 + N, as a shell reports it


class Stopped(BaseException):
    """A signal ended a command before it finished: main prints the message and exits 128 + the signal's number.

    A BaseException, like KeyboardInterrupt: no handler of ordinary errors may take it for one."""

    def __init__(self, sig: signal.Signals, message: str) -> None:
        super().__init__(message)
        self.signal = sig


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP as requests to stop: each is recorded and passed to the listener, never raised as
    KeyboardInterrupt nor left to kill the process while it writes."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: list[signal.Signals] = []
        self._listener: Callable[[signal.Signals], object] | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        self.received.clear()
        self._listener = None
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def ignore(self) -> None:
        """For the rest of the process: Python puts the default handlers back while it finalizes, and a late signal
        would then kill a process whose work is done (SIG_IGN is the one disposition it leaves in place)."""
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def listen(self, listener: Callable[[signal.Signals], object] | None) -> None:
        """Pass each signal from now on to listener (None: record it only), and at once the first one received."""
        self._listener = listener
        if listener is not None and self.received:
            listener(self.received[0])

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        self.received.append(sig)
        if self._listener is not None:
            self._listener(sig)


_SIGNALS = StopSignals()


def main(argv: list[str] | None = None) -> int:
    _SIGNALS.install()  # first: every import and step from here on can be stopped cleanly
    try:
        code = _main(argv)
        _SIGNALS.listen(None)  # finished: a signal from here on changes nothing
        return code
    except Stopped as stop:
        print(f"paperdesk: {stop}", file=sys.stderr)
        return EXIT_SIGNAL_BASE + stop.signal
    finally:
        if argv is None:
            _SIGNALS.ignore()
        else:  # called in-process (tests): the caller gets its handlers back
            _SIGNALS.restore()


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.func not in (_cmd_run, _cmd_console):
        _SIGNALS.listen(_stop_now)  # run closes its session and console detaches: the others end where they are
    try:
        try:
            if getattr(args, "ignore_audit", None) is not None and _audit_refused(args):
                return 1
            code: int = args.func(args)
            sys.stdout.flush()  # here, not at exit: a reader that went away is met while it can still be handled
            return code
        except BrokenPipeError:
            _drop_stdout()
            return 0
    except Exception as exc:
        if not isinstance(exc, _input_errors()):
            raise
        print(f"paperdesk: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _audit_refused(args: argparse.Namespace) -> bool:
    """validate, evaluate and report read a database whose audit chain is intact, or say so on their first line:
    refused, or (--ignore-audit) read anyway. JSON for machines on standard output keeps that line off it."""
    from console.store_views import refuse_broken_chain

    as_json = getattr(args, "json", False) or getattr(args, "format", None) == "json"
    machine = as_json and getattr(args, "out", None) is None
    return refuse_broken_chain(_db_path(args), args.command, args.ignore_audit, sys.stderr if machine else sys.stdout)


def _stop_now(sig: signal.Signals) -> None:
    _SIGNALS.listen(None)  # one is enough: a second signal must not interrupt main while it reports the first
    raise Stopped(sig, f"stopped ({sig.name})")


def _stopped_during_start_up() -> Stopped:
    sig = _SIGNALS.received[0]
    return Stopped(sig, f"stopped during start-up ({sig.name}): nothing was changed")


def _drop_stdout() -> None:
    """The reader of standard output went away (`paperdesk status | head -1`): not an error. Point the descriptor
    at /dev/null so nothing still buffered fails again (with a traceback) when Python flushes it at exit."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file (a caller's StringIO): nothing will flush to a closed pipe
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _input_errors() -> tuple[type[Exception], ...]:
    lazy = [getattr(sys.modules[m], name) for m, name in _LAZY_INPUT_ERRORS if m in sys.modules]
    return (InputError, *lazy)


def _parser() -> argparse.ArgumentParser:
    from engine.store.read import EXPORTS

    parser = argparse.ArgumentParser(prog="paperdesk", description="Paper-trading operator console.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start a paper session (the console, or headless with --no-ui)")
    run.add_argument("--config", type=Path, help=f"config file (default ./config.toml, else {DEFAULT_CONFIG})")
    run.add_argument("--no-ui", action="store_true", help="run without the console, printing status lines")
    run.add_argument("--duration", type=float, help="stop after this many seconds (default: run until stopped)")
    run.add_argument("--record", type=Path, help="write the market data the session sees to this .jsonl file")
    _db_option(run, with_config=False)
    run.add_argument("--new-session", action="store_true",
                     help="end the database's resumable session (if any) and start a new one")
    run.add_argument("--ideal", action="store_true",
                     help="the parity venue: zero latency, market orders whole at the mid (what the twin backtest "
                          "of `paperdesk validate` assumes)")
    run.add_argument("--theme", help="the console's theme: dark, light, high-contrast or a Textual theme's name "
                                     "(else PAPERDESK_THEME, [console] theme, the one last chosen in the console, "
                                     "dark)")
    run.set_defaults(func=_cmd_run)

    validate = sub.add_parser("validate", help="replay a session's market data through its twin backtest and score "
                                               "how alike their decisions are, explaining every difference")
    _db_option(validate)
    validate.add_argument("--session", type=int, help="session id (default: the latest)")
    validate.add_argument("--strategy", help="one strategy only (default: all the session ran)")
    validate.add_argument("--json", action="store_true", help="print JSON for machines")
    validate.add_argument("--allow-drift", action="store_true",
                          help="validate a session whose strategy code or stored config changed since it ran, "
                               "counting every difference unexplained (refused without it)")
    validate.set_defaults(func=_cmd_validate)

    evaluate = sub.add_parser("evaluate", help="the promotion report: is a strategy ready to leave paper?")
    _db_option(evaluate)
    evaluate.add_argument("--strategy", required=True)
    evaluate.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    evaluate.add_argument("--out", type=Path, help="write to this new file instead of standard output")
    evaluate.set_defaults(func=_cmd_evaluate)

    report = sub.add_parser("report", help="a session's performance, behaviour and execution report")
    _db_option(report)
    report.add_argument("--session", type=int, help="session id (default: the latest)")
    report.add_argument("--format", default="md", choices=("md", "json", "html"))
    report.add_argument("--out", type=Path, help="write to this new file instead of standard output")
    report.set_defaults(func=_cmd_report)
    for reader in (validate, evaluate, report):
        reader.add_argument("--ignore-audit", action="store_true",
                            help="read the database even though its audit chain is broken (the first line says so)")

    status = sub.add_parser("status", help="the running (or last) session: state, equity, positions, orders, fills")
    _db_option(status)
    status.add_argument("--session", type=int, help="session id (default: the latest)")
    status.add_argument("--json", action="store_true", help="print JSON for machines")
    status.set_defaults(func=_cmd_status)

    console = sub.add_parser("console", help="the console on a session another process runs (paperdesk run --no-ui "
                                             "--db ...): watch it and send it commands; q detaches, it trades on")
    _db_option(console)
    console.add_argument("--session", type=int, help="session id (default: the latest, followed when a new one starts)")
    console.add_argument("--theme", help="the console's theme: dark, light, high-contrast or a Textual theme's name "
                                         "(else PAPERDESK_THEME, the session's [console] theme, the one last chosen "
                                         "in the console, dark)")
    console.set_defaults(func=_cmd_console)

    sessions = sub.add_parser("sessions", help="every session in the database with its config hash and P&L")
    _db_option(sessions)
    sessions.add_argument("--json", action="store_true", help="print JSON for machines")
    sessions.set_defaults(func=_cmd_sessions)

    export = sub.add_parser("export", help="write a session's fills, orders, decisions, equity or market data")
    _db_option(export)
    export.add_argument("--what", required=True, choices=sorted(EXPORTS))
    export.add_argument("--format", default="csv", choices=("csv", "parquet"))
    export.add_argument("--session", type=int, help="session id (default: the latest)")
    export.add_argument("--out", type=Path, help="output file (default for csv: standard output)")
    export.set_defaults(func=_cmd_export)

    audit = sub.add_parser("audit", help="the tamper-evident audit chain")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check every link of the chain; exit 1 at the first broken one")
    _db_option(verify)
    verify.set_defaults(func=_cmd_audit_verify)

    for name, text in (("halt", "stop opening positions (open entry orders are canceled; exits still managed)"),
                       ("pause", "stop opening positions (resting orders stay; exits still managed)"),
                       ("resume", "lift the operator's or a breaker's halt, pause or cooldown (market-data health "
                                  "clears itself)"),
                       ("emergency-stop", "cancel every open order, close every position at market, and latch "
                                          "until `resume --reason`")):
        cmd = sub.add_parser(name, help=text)
        _db_option(cmd)
        cmd.add_argument("--reason", default="", help="why (recorded in the audit chain; resume from an emergency "
                                                     "stop requires one)")
        if name != "emergency-stop":
            cmd.add_argument("--strategy", help="one strategy only (default: the whole portfolio)")
        cmd.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the engine's answer (default 5)")
        cmd.set_defaults(func=_cmd_operator, operator_command=name)
    phase = sub.add_parser("phase", help="move a strategy to another progressive risk phase")
    _db_option(phase)
    phase.add_argument("--strategy", required=True)
    phase.add_argument("--to", type=int, required=True, dest="phase", help="the [[phases]] number")
    phase.add_argument("--reason", default="", help="why (recorded in the audit chain)")
    phase.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the engine's answer (default 5)")
    phase.set_defaults(func=_cmd_operator, operator_command="phase")

    bt = sub.add_parser("backtest", help="replay bars (CSV, Parquet), market data or a recorded session (.jsonl) "
                                         "through the engine, fill model and risk of paper trading")
    bt.add_argument("--data", action="append", required=True, metavar="[SYMBOL=]FILE",
                    help="OHLCV bars (.csv or .parquet; several symbols: a symbol column, or --data SYMBOL=FILE "
                         "repeated), market data as `paperdesk export --what market_data` writes it, or a recording "
                         "made with `run --record` (.jsonl)")
    bt.add_argument("--strategy", help="strategy kind to run (default: the strategies in the config)")
    bt.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="strategy parameter")
    bt.add_argument("--symbol", help="symbol of a bar file's bars (default: the config's first instrument); in a "
                                     "file with a symbol column, the one symbol to backtest")
    bt.add_argument("--timeframe", help="bar timeframe, e.g. 1m (default: inferred from the file)")
    bt.add_argument("--config", type=Path, help="config for instruments, fees, risk and cash")
    bt.add_argument("--cash", type=float, help="starting cash (default: the config's)")
    bt.add_argument("--from", dest="start", type=_utc_ns, metavar="ISO",
                    help="only data from this time on, e.g. 2024-03-01 or 2024-03-01T09:30 (UTC unless an offset is "
                         "given); bars by the time they open")
    bt.add_argument("--to", dest="end", type=_utc_ns, metavar="ISO", help="only data before this time")
    bt.add_argument("--gaps", choices=("warn", "error"), default="warn",
                    help="bars missing from a regular series: a warning listing the first ones (default), or refused")
    bt.add_argument("--db", type=_db_file, metavar="OUT.sqlite",
                    help="save the run as a session in this database (new, or one more session in an existing one), "
                         "for paperdesk report, status and export")
    bt.add_argument("--report", type=Path, metavar="OUT.html",
                    help="write the session report `paperdesk report` makes to this new file (.html, .md or .json)")
    bt.add_argument("--session-db", type=_db_file, metavar="DB",
                    help="for a recording or market data file: the database of the paper session it is of, whose "
                         "config it is replayed with (default: the config's [store] path)")
    bt.add_argument("--given-config", action="store_true",
                    help="replay a paper session's data with --config's strategies and settings, not the session's "
                         "own (the differences are listed)")
    bt.set_defaults(func=_cmd_backtest)
    from console.strategy_commands import add_strategy_commands

    add_strategy_commands(sub)
    return parser


def _db_file(text: str) -> Path:
    """--db as a plain file path. SQLite would read ':memory:' as a database that vanishes at exit and 'file:...' as
    a URI naming another file than the lock beside the path; an empty name is the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name; pass the database file, e.g. --db desk.sqlite")
    if text == ":memory:":
        raise argparse.ArgumentTypeError(f"{text!r}: a session is kept in a file (an in-memory database is gone "
                                         "when the process ends); pass a file path, e.g. --db desk.sqlite")
    if text.startswith("file:"):
        plain = text.removeprefix("file:").partition("?")[0].removeprefix("//") or "desk.sqlite"
        raise argparse.ArgumentTypeError(f"{text!r}: SQLite's URI form is not accepted (the lock and the database "
                                         f"would be different files); pass the plain path, e.g. --db {plain}")
    return Path(text)


def _db_option(parser: argparse.ArgumentParser, with_config: bool = True) -> None:
    parser.add_argument("--db", type=_db_file, help="database file (default: [store] path in the config, relative "
                                                 "to the config file's folder, or to the current directory for "
                                                 "the installed default config)")
    if with_config:
        parser.add_argument("--config", type=Path, help="config file giving the default --db")


def _config_path(path: Path | None) -> Path:
    if path is None:
        return Path("config.toml") if Path("config.toml").is_file() else DEFAULT_CONFIG
    return path


def _config(path: Path | None) -> AppConfig:
    from engine.config import load_config

    return load_config(_config_path(path))


def _db_path(args: argparse.Namespace, config: AppConfig | None = None) -> Path:
    """--db, else the config's [store] path (relative to the config file's folder)."""
    if args.db is not None:
        return args.db
    from engine.config import load_config

    config_path = _config_path(args.config)
    config = config or load_config(config_path)
    path = Path(config.store.path).expanduser()
    return path if path.is_absolute() else _store_base(config_path) / path


def _store_base(config_path: Path) -> Path:
    """The folder a relative [store] path is in: the config file's, except for the default config's copy installed
    inside the package (a wheel's site-packages is no place for a database): then the current directory."""
    folder = config_path.resolve().parent
    return Path.cwd() if folder == PACKAGE_DIR else folder


def _cmd_run(args: argparse.Namespace) -> int:
    if args.duration is not None and not args.duration > 0:
        raise InputError(f"--duration {args.duration:g}: must be a positive number of seconds")
    config = _config(args.config)
    if args.ideal:
        from engine.runtime import ideal_venue

        config = ideal_venue(config)
    if args.record is not None:
        _check_writable(args.record)
    db = _db_path(args, config)
    import asyncio

    from engine.session import StoppedBeforeStart

    if args.no_ui:
        from console.headless import run_headless

        running = run_headless(config, args.duration, args.record, db, args.new_session, signals=_SIGNALS)
    else:
        from console.app import run_console

        running = run_console(config, args.duration, args.record, db, args.new_session, signals=_SIGNALS,
                              theme=args.theme)
    if _SIGNALS.received:  # during the imports and checks above: the database was not touched
        running.close()  # a coroutine never started
        raise _stopped_during_start_up()
    try:
        return asyncio.run(running)
    except StoppedBeforeStart:
        if not _SIGNALS.received:  # the reader of our output went away: that ends any command quietly
            return 0
        raise _stopped_during_start_up() from None


def _cmd_status(args: argparse.Namespace) -> int:
    from console.store_views import print_status

    return print_status(_db_path(args), args.session, args.json)


def _cmd_console(args: argparse.Namespace) -> int:
    import asyncio

    from console.app import check_keys, check_theme
    from console.attach import attach, run_attached

    check_theme(args.theme)  # before the session is read: a typo costs nothing
    # the operator's keys, theme and bell: a session stores its config without [console]
    settings = _config(args.config).console if args.config is not None else None
    if settings is not None:
        check_keys(settings.keys)
    desk = attach(_db_path(args), args.session)
    if _SIGNALS.received:  # while it read the session: nothing to leave yet
        desk.stop("stopped before the console started")
        raise Stopped(_SIGNALS.received[0], f"stopped ({_SIGNALS.received[0].name})")
    return asyncio.run(run_attached(desk, _SIGNALS, args.theme, settings))


def _cmd_sessions(args: argparse.Namespace) -> int:
    from console.store_views import print_sessions

    return print_sessions(_db_path(args), args.json)


def _cmd_export(args: argparse.Namespace) -> int:
    from console.store_views import export

    if args.format == "parquet" and args.out is None:
        raise InputError("--format parquet needs --out FILE (parquet is binary; it does not go to the terminal)")
    _check_new_file(args.out)
    with _writing(args.out):
        return export(_db_path(args), args.what, args.format, args.session, args.out)


@contextmanager
def _writing(out: Path | None) -> Iterator[None]:
    """What the output refused (a full disk, a file size limit, a closed terminal) as a message naming it."""
    try:
        yield
    except BrokenPipeError:
        raise  # `export | head` closed the pipe: main ends the command quietly
    except OSError as exc:
        where = f"--out {out}" if out is not None else "standard output"
        raise InputError(f"{where}: cannot write it ({exc.strerror or exc})") from None


def _cmd_validate(args: argparse.Namespace) -> int:
    from console.reports import print_validation

    thresholds = _config(args.config).validation if args.config is not None else None
    return print_validation(_db_path(args), args.session, args.strategy, args.json, thresholds, args.allow_drift)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from console.reports import print_promotion

    _check_new_file(args.out)
    criteria = _config(args.config).promotion if args.config is not None else None
    with _writing(args.out):
        return print_promotion(_db_path(args), args.strategy, args.json, criteria, args.out)


def _cmd_report(args: argparse.Namespace) -> int:
    from console.reports import print_report

    _check_new_file(args.out)
    with _writing(args.out):
        return print_report(_db_path(args), args.session, args.format, args.out)


def _check_new_file(path: Path | None) -> None:
    if path is None:
        return
    if path.exists():
        raise InputError(f"--out {path}: the file exists; choose a new name (nothing is overwritten)")
    if not path.resolve().parent.is_dir():
        raise InputError(f"--out {path}: the directory {path.resolve().parent} does not exist")


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from console.store_views import verify_audit

    return verify_audit(_db_path(args))


def _cmd_operator(args: argparse.Namespace) -> int:
    from console.operator import send_command

    if not args.wait >= 0:
        raise InputError(f"--wait {args.wait:g}: must be zero or more seconds")
    command = args.operator_command
    payload: dict[str, Any] = {}
    if getattr(args, "strategy", None):
        payload["strategy"] = args.strategy
    if command == "phase":
        payload["phase"] = args.phase
    return send_command(_db_path(args), command, payload, args.reason.strip(), args.wait)


def _check_writable(path: Path) -> None:
    """Refuse a --record path before trading starts rather than fail mid-session."""
    from engine.data.recording import is_recording

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
    from pydantic import ValidationError

    from engine.config import parse_config
    from engine.strategy.registry import strategy_class

    config = _config(args.config)
    if args.cash is not None:  # checked as the config's starting_cash is: finite, positive, bounded
        data = config.model_dump(mode="json")
        data["session"]["starting_cash"] = args.cash
        config = parse_config(data, f"--cash {args.cash:g}")
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
    report_format = _report_format(args.report)
    if args.db is not None:  # before the data is read: a database that cannot take the run is said first
        from engine.store.database import check_database

        check_database(args.db, thorough=False)
    from engine.backtest import plan_backtest, run_plan

    config_path = _config_path(args.config)
    session_db = args.session_db or _store_path(config_path, config)
    plan = plan_backtest(config, args.data, args.strategy, params, args.symbol, args.timeframe, start_ns=args.start,
                         end_ns=args.end, gaps=args.gaps, cash=args.cash, session_db=session_db,
                         given_config=args.given_config, config_name=str(config_path), progress=sys.stderr.isatty())
    for warning in plan.warnings:  # before the run: a long one must not hide that it runs on another config
        print(f"paperdesk: warning: {warning}", file=sys.stderr)
    for note in plan.notes:
        print(note)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="paperdesk-backtest-") as scratch:
        # a report is made from a saved session: without --db, from one in a database that is dropped afterwards
        database = args.db if args.db is not None or args.report is None else Path(scratch) / "backtest.sqlite"
        bar = _ProgressBar() if sys.stderr.isatty() else None  # a terminal only: nothing in logs or CI output
        try:
            result = run_plan(plan, bar, database)
        finally:
            if bar is not None:
                bar.stop()
        if args.db is not None:
            print(f"saved as session {result.session_id} in {args.db}: paperdesk report --db {args.db} "
                  f"--session {result.session_id}")
        if args.report is not None:
            from console.reports import print_report

            assert database is not None and result.session_id is not None
            with _writing(args.report):
                print_report(database, result.session_id, report_format, args.report)
            print(f"report written to {args.report}")
    for line in result.lines():
        print(line)
    return 0


def _utc_ns(text: str) -> int:
    """--from/--to: an ISO 8601 date or time (naive means UTC) as nanoseconds since the epoch."""
    from datetime import UTC, datetime, timedelta

    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time, e.g. 2024-03-01 or "
                                         "2024-03-01T09:30:00 (UTC unless an offset like +01:00 is given)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def _report_format(path: Path | None) -> str:
    """The --report format its name asks for; the file must be new."""
    if path is None:
        return "html"
    formats = {".html": "html", ".htm": "html", ".md": "md", ".json": "json"}
    if path.suffix.lower() not in formats:
        raise InputError(f"--report {path}: name the file .html, .md or .json (the report's format)")
    if path.exists():
        raise InputError(f"--report {path}: the file exists; choose a new name (nothing is overwritten)")
    if not path.resolve().parent.is_dir():
        raise InputError(f"--report {path}: the directory {path.resolve().parent} does not exist")
    return formats[path.suffix.lower()]


def _store_path(config_path: Path, config: AppConfig) -> Path:
    """The config's [store] path, as `paperdesk run` with that config would use it."""
    path = Path(config.store.path).expanduser()
    return path if path.is_absolute() else _store_base(config_path) / path


class _ProgressBar:
    """rich's progress bar on standard error, for the backtest's events."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                             console=Console(stderr=True), transient=True)
        self._task = self._bar.add_task("backtest", total=None)

    def start(self, total: int | None) -> None:
        self._bar.update(self._task, total=total)
        self._bar.start()

    def update(self, done: int) -> None:
        self._bar.update(self._task, completed=done)

    def stop(self) -> None:
        self._bar.stop()


def _param_problem(err: ErrorDetails, known: dict[str, Any]) -> str:
    key = ".".join(map(str, err["loc"]))
    if err["type"] == "extra_forbidden":
        return f"--param {key}: unknown parameter; known: {', '.join(known)}"
    if not key:
        return f"--param: {err['msg'].removeprefix('Value error, ')}"
    return f"--param {key}={err['input']!r}: {err['msg']}"


if __name__ == "__main__":
    sys.exit(main())
