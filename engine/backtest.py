"""Backtest = replay: the same Engine driven by a SimClock over recorded or file market data.

The data is OHLCV bars (CSV or Parquet: engine/data/bar_file.py), market data in paperdesk's own format (trades,
books, bars: engine/data/market_file.py, what `paperdesk export --what market_data` writes) or a session recording
(.jsonl: engine/data/recording.py). Everything is checked before the first event is replayed.

A recording or market data file of a paper session is replayed with that session's own config (named in the
recording's header, or found in the session's database), and says so; without one it is replayed with the given
config and says that instead. Either way the keys that differ are listed, and a file holding only the session's
tail (recorded after a resume) is warned about. Bars run the config's strategies that trade their symbols, on the
bars' timeframe. With a database the run is saved there as a session (engine/backtest_store.py).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.backtest_origin import SessionOrigin, find_in_database, from_header
from engine.backtest_store import BacktestStore
from engine.clock import NS_PER_SECOND, SimClock, utc_text
from engine.config import AppConfig, ConfigError, parse_config
from engine.core import Engine, Journal
from engine.data.bar_file import BarFile, BarFileError, load_bar_files, merged_bars
from engine.data.bars import timeframe_ns
from engine.data.market_file import is_market_file, load_market_file
from engine.data.recording import is_recording, load_recording, recording_origin
from engine.execution.fill_model import FillModel
from engine.model.market import MarketEvent, event_time
from engine.replay import replay
from engine.runtime import build_engine
from engine.store.sessions import config_differences, config_hash, config_text
from engine.strategy.base import Strategy

GAP_RULES = ("warn", "error")
GAPS_LISTED = 5
MATCHED_EVENTS = 20  # a recording's first events looked up in a database to find its session
PROGRESS_EVERY = 4096  # events between progress reports
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")  # a config strategy name
_SYMBOL = re.compile(r"[A-Z0-9]{1,20}/[A-Z0-9]{1,20}")


class BacktestInputError(ValueError):
    """A backtest asked for something the config or the data cannot give."""


class Progress(Protocol):
    """Told how many events the run will replay (None: not known), then how many it has, every few thousand."""

    def start(self, total: int | None) -> None: ...
    def update(self, done: int) -> None: ...


@dataclass(frozen=True, slots=True)
class DataSpec:
    """One --data: a file, and for a bar file without a symbol column whose bars it holds ('BTC/USDT=btc.csv')."""

    path: Path
    symbol: str | None = None

    @classmethod
    def parse(cls, text: str | Path) -> DataSpec:
        if isinstance(text, Path):
            return cls(text)
        symbol, sep, rest = text.partition("=")
        if sep and rest and _SYMBOL.fullmatch(symbol.strip()):
            return cls(Path(rest), symbol.strip())
        return cls(Path(text))


@dataclass(slots=True)
class Plan:
    """What a backtest will run: the config (strategies as they will trade), the events, and what to tell the user."""

    config: AppConfig
    events: Iterable[MarketEvent]
    total: int | None
    market_start_ns: int
    data: str
    mark_every_ns: int
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """What a backtest did: the engine (decisions, orders, fills, equity curve) and the event count."""

    engine: Engine
    events: int
    data: str
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    config: AppConfig | None = None
    session_id: int | None = None  # the session it was saved as, with a database

    def lines(self) -> list[str]:
        engine = self.engine
        account = engine.account
        equity = account.equity()
        curve = np.array([e for _, e in engine.equity_curve] or [account.starting_cash])
        peaks = np.maximum.accumulate(curve)
        max_dd = float(np.max((peaks - curve) / np.where(peaks > 0, peaks, np.inf)))
        out = [f"data={self.data} events={self.events}"]
        decisions = Counter(d.strategy for d in engine.decisions)
        orders = Counter(o.strategy for o in engine.orders.values())
        for strategy in engine.strategies.values():
            n_dec, n_ord = decisions[strategy.name], orders[strategy.name]
            out.append(f"strategy={strategy.name} kind={strategy.kind} status={strategy.status.value} "
                       f"decisions={n_dec} orders={n_ord}" + (f" error={strategy.error!r}" if strategy.error else ""))
        out.append(f"orders={len(engine.orders)} fills={len(engine.fills)} fees={account.fees_paid:.2f} "
                   f"final_equity={equity:.2f} return={(equity / account.starting_cash - 1) * 100:+.2f}% "
                   f"max_drawdown={max_dd * 100:.2f}%")
        return out


def run_backtest(config: AppConfig, data: str | Path | Sequence[str | Path | DataSpec],
                 strategy_kind: str | None = None, params: dict[str, Any] | None = None, symbol: str | None = None,
                 timeframe: str | None = None, *, start_ns: int | None = None, end_ns: int | None = None,
                 gaps: str = "warn", cash: float | None = None, session_db: Path | None = None,
                 given_config: bool = False, config_name: str = "the given config", progress: Progress | None = None,
                 database: Path | None = None) -> BacktestResult:
    """Replay bars, market data or a session recording through the engine config describes.

    strategy_kind: that one strategy (with params) instead of the config's, on symbol (bars: the data's symbols).
    start_ns, end_ns: only the data from start_ns (a bar by when it opens) up to before end_ns.
    gaps: "warn" (listed in the result's warnings) or "error" (refused) for bars missing from a regular series.
    cash: the starting cash, also over a session's own config. session_db: the database a recording or market data
    file of a paper session is looked for in. given_config: replay those with config even when the session's own is
    known. database: save the run there as a session.
    """
    plan = plan_backtest(config, data, strategy_kind, params, symbol, timeframe, start_ns=start_ns, end_ns=end_ns,
                         gaps=gaps, cash=cash, session_db=session_db, given_config=given_config,
                         config_name=config_name, progress=progress is not None)
    return run_plan(plan, progress, database)


def run_plan(plan: Plan, progress: Progress | None = None, database: Path | None = None) -> BacktestResult:
    """Replay a planned backtest; with a database, save it there as a session (all of it, or nothing)."""
    engine = build_engine(plan.config, SimClock())
    engine.guard.health.expect(engine.instruments, plan.market_start_ns)  # every instrument delivers from the start
    if progress is not None:
        progress.start(plan.total)
    session_id = None
    if database is None:
        count = replay(engine, _reporting(plan.events, progress) if progress is not None else plan.events)
        _check_count(count, plan)
    else:
        with BacktestStore(database, plan.config, plan.data, plan.market_start_ns) as store:
            session_id = store.open(engine)
            step = _stepper(progress) if progress is not None else None
            count = store.replay(engine, plan.events, plan.mark_every_ns, step)
            _check_count(count, plan)
            store.finish(engine, count)
        if progress is not None:
            progress.update(count)
    return BacktestResult(engine, count, plan.data, tuple(plan.notes), tuple(plan.warnings), plan.config, session_id)


def backtest_events(config: AppConfig, events: Iterable[MarketEvent], strategies: list[Strategy] | None = None,
                    fill_model: FillModel | None = None, journal: Journal | None = None,
                    data_due_from: int | None = None) -> tuple[Engine, int]:
    """The backtest itself: config's engine (or its given strategies and venue) replaying events on a SimClock.

    data_due_from: every configured instrument is expected to deliver data from then on, as in the paper session
    being replayed (a symbol that never does goes stale there, and so here).
    """
    engine = build_engine(config, SimClock(), strategies, fill_model)
    engine.journal = journal
    if data_due_from is not None:
        engine.guard.health.expect(engine.instruments, data_due_from)
    return engine, replay(engine, events)


def plan_backtest(config: AppConfig, data: str | Path | Sequence[str | Path | DataSpec],
                  strategy_kind: str | None = None, params: dict[str, Any] | None = None, symbol: str | None = None,
                  timeframe: str | None = None, *, start_ns: int | None = None, end_ns: int | None = None,
                  gaps: str = "warn", cash: float | None = None, session_db: Path | None = None,
                  given_config: bool = False, config_name: str = "the given config", progress: bool = False) -> Plan:
    """Read and check the data, and settle the config it runs with (see run_backtest); nothing is replayed yet."""
    specs = [DataSpec.parse(d) if not isinstance(d, DataSpec) else d
             for d in ([data] if isinstance(data, str | Path) else data)]
    if not specs:
        raise BacktestInputError("no data given; pass --data FILE")
    if gaps not in GAP_RULES:
        raise BacktestInputError(f"gaps {gaps!r}: expected one of {', '.join(GAP_RULES)}")
    if start_ns is not None and end_ns is not None and start_ns >= end_ns:
        raise BacktestInputError(f"--from {utc_text(start_ns)} is not before --to {utc_text(end_ns)}")
    if symbol is not None and symbol not in {i.symbol for i in config.instruments}:
        raise BacktestInputError(f"--symbol {symbol!r} is not an instrument in the config; instruments: "
                                 f"{', '.join(i.symbol for i in config.instruments)}")
    sessions = [s for s in specs if is_recording(s.path) or is_market_file(s.path)]
    if sessions:
        if len(specs) > 1:
            raise BacktestInputError(f"{sessions[0].path}: a recording or market data file is replayed alone; pass "
                                     "it as the only --data")
        return _session_plan(config, specs[0].path, strategy_kind, params, symbol, timeframe, start_ns, end_ns,
                             cash, session_db, given_config, config_name, progress)
    if symbol is not None and len(specs) > 1:
        raise BacktestInputError("--symbol names the symbol of one file's bars; with several files name each "
                                 "one's: --data SYMBOL=FILE")
    return _bar_plan(config, specs, strategy_kind, params, symbol, timeframe, start_ns, end_ns, gaps, config_name)


# ---- bars ------------------------------------------------------------------------------------------------------

def _bar_plan(config: AppConfig, specs: list[DataSpec], strategy_kind: str | None, params: dict[str, Any] | None,
              symbol: str | None, timeframe: str | None, start_ns: int | None, end_ns: int | None, gaps: str,
              config_name: str) -> Plan:
    instruments = [i.symbol for i in config.instruments]
    files = load_bar_files([(s.path, s.symbol or symbol) for s in specs], timeframe, default_symbol=instruments[0])
    for f in files:
        if f.symbol not in instruments:
            raise BacktestInputError(f"{f.path}: {f.symbol} is not an instrument in the config (instruments: "
                                     f"{', '.join(instruments)}); add an [[instruments]] entry for it (tick_size, "
                                     "lot_size, fees), or name the file's symbol: --data SYMBOL=FILE")
    files.sort(key=lambda f: instruments.index(f.symbol))  # bars closing together: in the config's order
    whole = files
    files = [f.between(start_ns, end_ns) for f in files]
    if not any(len(f) for f in files):
        cover = "; ".join(f"{f.path} {f.symbol} {utc_text(int(f.ts[0]))} .. {utc_text(int(f.ts[-1]))}" for f in whole)
        raise BacktestInputError(f"no bars open between {_when(start_ns, 'the start')} and {_when(end_ns, 'the end')}"
                                 f"; the data covers {cover}")
    files = [f for f in files if len(f)]
    plan = Plan(config, merged_bars(files), sum(len(f) for f in files), min(int(f.ts[0]) for f in files),
                _describe(files), 0)
    _gaps(files, gaps, plan)
    plan.config = _bar_config(config, strategy_kind, params, files, plan.notes)
    plan.mark_every_ns = _mark_every(plan.config)
    plan.notes.insert(0, f"config: {config_name}, its strategies and instruments for this data (config "
                         f"{config_hash(config_text(plan.config))[:12]})")
    return plan


def _describe(files: list[BarFile]) -> str:
    paths = list(dict.fromkeys(str(f.path) for f in files))
    return ",".join(paths)


def _when(ns: int | None, default: str) -> str:
    return default if ns is None else utc_text(ns)


def _gaps(files: list[BarFile], rule: str, plan: Plan) -> None:
    found = [(f, f.gaps(GAPS_LISTED)) for f in files]
    found = [(f, g) for f, g in found if g.count]
    if not found:
        return
    timeframe = files[0].timeframe
    summary = "; ".join(f"{f.symbol} {g.count} gap{'s' if g.count > 1 else ''} ({g.missing} bars)" for f, g in found)
    first = sorted((gap for _, g in found for gap in g.first), key=lambda gap: gap.next_ns)[:GAPS_LISTED]
    text = f"bars are missing from the {timeframe} series: {summary}; the first: " + "; ".join(
        gap.line(timeframe) for gap in first)
    if rule == "error":
        raise BarFileError(f"{text}. Fill or cut the data, or pass --gaps warn to backtest over the gaps")
    plan.warnings.append(f"{text}. Each is a market-data gap to the engine (its symbol is unhealthy, the portfolio "
                         "REDUCING, for breakers.healthy_after_seconds after it); --gaps error refuses such data")


def _bar_config(config: AppConfig, strategy_kind: str | None, params: dict[str, Any] | None, files: list[BarFile],
                notes: list[str]) -> AppConfig:
    """config as it runs on these bars: its instruments with data, its strategies that trade them on the bars'
    timeframe (or the one asked for)."""
    symbols = [f.symbol for f in files]
    timeframe, period = files[0].timeframe, files[0].period_ns
    data = config.model_dump(mode="json")
    if strategy_kind is not None:
        name = strategy_kind if _NAME.fullmatch(strategy_kind) else "strategy"
        strategies = [{"name": name, "kind": strategy_kind, "symbols": symbols, "timeframe": timeframe,
                       "params": params or {}}]
    else:
        strategies, left_out = [], []
        for s in data["strategies"]:
            inside = [x for x in s["symbols"] if x in symbols]
            if not inside:
                left_out.append(s["name"])
                continue
            if len(inside) < len(s["symbols"]):
                lacking = ", ".join(x for x in s["symbols"] if x not in symbols)
                raise BacktestInputError(f"strategy {s['name']} trades {', '.join(s['symbols'])}, and the data has no "
                                         f"bars of {lacking}: give them too (another --data, or a symbol column)")
            if s["timeframe"] != timeframe:
                notes.append(f"strategy {s['name']}: configured for {s['timeframe']} bars, decides on the data's "
                             f"{timeframe} bars")
            strategies.append(dict(s, timeframe=timeframe, timeframes=_longer(s.get("timeframes") or [], timeframe,
                                                                            period, s["name"], notes)))
        if not strategies:
            raise BacktestInputError(f"no strategy in the config trades {', '.join(symbols)}; pass --strategy")
        if left_out:
            notes.append(f"left out, no bars of their symbols: {', '.join(left_out)}")
    data["strategies"] = strategies
    data["instruments"] = [i for i in data["instruments"] if i["symbol"] in symbols]
    for key in ("max_order_qty", "max_position_qty"):
        data["risk"][key] = {k: v for k, v in data["risk"][key].items() if k in symbols}
    stale = data["breakers"].get("stale_seconds")
    if len(symbols) > 1 and stale is not None and stale * NS_PER_SECOND < period:
        # bars are the only data: a symbol is silent a whole bar long, and must not count as stale for it
        data["breakers"]["stale_seconds"] = period / NS_PER_SECOND
        notes.append(f"breakers.stale_seconds {stale:g} raised to the bars' {period / NS_PER_SECOND:g} s: bar data "
                     "arrives once a bar")
    return parse_config(data, "the backtest's config")


def _longer(frames: list[str], timeframe: str, period: int, name: str, notes: list[str]) -> list[str]:
    """A strategy's further timeframes that can be built from the data's bars (whole multiples of them)."""
    if not frames:
        return []
    kept = [t for t in frames[1:] if timeframe_ns(t) > period and timeframe_ns(t) % period == 0]
    dropped = [t for t in frames[1:] if t not in kept]
    if dropped:
        notes.append(f"strategy {name}: no {', '.join(dropped)} bars from {timeframe} data (not a whole multiple)")
    return [timeframe, *kept]


# ---- a paper session's data: recordings and market data files -----------------------------------------------

def _session_plan(config: AppConfig, path: Path, strategy_kind: str | None, params: dict[str, Any] | None,
                  symbol: str | None, timeframe: str | None, start_ns: int | None, end_ns: int | None,
                  cash: float | None, session_db: Path | None, given_config: bool, config_name: str,
                  progress: bool) -> Plan:
    origin: SessionOrigin | None = None
    first_seq, named = None, None  # where a market data file says it starts, in which session
    if is_recording(path):
        header = recording_origin(path)
        first = list(itertools.islice(load_recording(path), MATCHED_EVENTS))
        if header is not None:
            origin = from_header(header)
        elif session_db is not None:
            origin = find_in_database(session_db, first)
        events: Iterable[MarketEvent] = _between(load_recording(path), start_ns, end_ns)
        total = _lines(path) if progress else None
        symbols = tuple(dict.fromkeys(e.symbol for e in first if e.symbol))
        what = "recording"
    else:
        market = load_market_file(path)
        first = market.events[:MATCHED_EVENTS]
        if session_db is not None:
            origin = find_in_database(session_db, first, market.session_id)
        events = market.between(start_ns, end_ns)
        total = len(events)
        symbols = market.symbols
        first_seq, named = market.first_seq, market.session_id
        what = "market data file"
    if not first:
        raise BacktestInputError(f"{path}: holds no market events")
    start = event_time(first[0]) if start_ns is None else max(start_ns, event_time(first[0]))
    plan = Plan(config, events, total, start, str(path), 0)
    chosen = _session_config(config, origin, path, what, given_config, config_name, session_db, plan)
    if cash is not None:
        dumped = chosen.model_dump(mode="json")
        dumped["session"]["starting_cash"] = cash
        chosen = parse_config(dumped, f"--cash {cash:g}", stored=True)
    if origin is not None and origin.tail_only:
        plan.warnings.append(_tail_text(path, what, origin.session_id, origin.database, origin.first_seq,
                                        origin.events_before, origin.restarts if origin.restarts_known else None))
    elif origin is None and first_seq is not None and first_seq > 1:
        plan.warnings.append(_tail_text(path, what, named, session_db, first_seq, first_seq - 1, None))
    instruments = {i.symbol for i in chosen.instruments}
    unknown = [s for s in symbols if s not in instruments]
    if unknown:
        raise BacktestInputError(f"{path}: holds data of {', '.join(unknown)}, not an instrument of the config it "
                                 f"is replayed with (instruments: {', '.join(sorted(instruments))})")
    if strategy_kind is not None:
        chosen = _one_strategy(chosen, strategy_kind, params, symbol or chosen.instruments[0].symbol,
                               timeframe or "1m", stored=origin is not None and not given_config)
    plan.config = chosen
    plan.mark_every_ns = _mark_every(chosen)
    return plan


def _session_config(config: AppConfig, origin: SessionOrigin | None, path: Path, what: str, given_config: bool,
                    config_name: str, session_db: Path | None, plan: Plan) -> AppConfig:
    """The session's own config when it is known (unless given_config), else config; what differs is said."""
    given = config_text(config)
    if origin is None:
        where = (f"no session in {session_db} holds its events" if session_db is not None and session_db.exists()
                 else f"no session database to look it up in ({session_db} does not exist)" if session_db is not None
                 else "no session database was given to look it up in")
        plan.warnings.append(
            f"{path}: the {what} does not say which session it is of, and {where}: it is replayed with "
            f"{config_name} (config {config_hash(given)[:12]}). If the session ran other strategies, parameters or "
            "venue settings, this result is not the session's; pass --session-db with the session's database to "
            "replay it with the session's own config")
        return config
    try:
        own = parse_config(json.loads(origin.config_json), f"{origin.name}'s stored config", stored=True)
    except (ConfigError, ValueError) as exc:
        if given_config:
            plan.warnings.append(f"replaying {path} with {config_name}: the config of {origin.name} cannot be "
                                 f"read by this paperdesk ({exc})")
            return config
        raise BacktestInputError(f"{path} is of {origin.name}, which ran a config this paperdesk cannot rebuild:\n"
                                 f"{exc}\npass --given-config to replay the data with yours") from None
    differences = config_differences(config_text(own), given)
    own_name = f"session {origin.session_id}'s own config (in {origin.database}, {origin.found_by})"
    if given_config:
        if differences:
            plan.warnings.append(f"replaying {path} with {config_name}, not {own_name}; they differ in (session -> "
                                 f"given): {'; '.join(differences)}")
        plan.notes.append(f"config: {config_name} (config {config_hash(given)[:12]}), by --given-config")
        return config
    if differences:
        plan.warnings.append(f"replaying {path} with {own_name}, not {config_name}, which differs in (session -> "
                             f"given): {'; '.join(differences)}. Pass --given-config to replay it with yours")
    plan.notes.append(f"config: {own_name}, config {config_hash(config_text(own))[:12]}"
                      + ("" if differences else f", the same as {config_name}"))
    return own


def _tail_text(path: Path, what: str, session_id: int | None, db: Path | None, first_seq: int, before: int,
               restarts: int | None) -> str:
    """A file that starts after its session's start: loudly, with the way to the whole session."""
    session = f"session {session_id}" if session_id is not None else "its session"
    if db is not None:
        session += f" of {db}"
    after = f", recorded after restart {restarts}" if restarts else ""
    sid = session_id if session_id is not None else "ID"
    where = db if db is not None else "DB"
    return (f"{path} holds only the tail of {session}: the {what} starts at the session's market event {first_seq}"
            f"{after}, so the {before} market events before it are not replayed, and the backtest starts flat where "
            "the session held positions, orders and indicator history. To backtest the whole session: paperdesk "
            f"export --db {where} --session {sid} --what market_data --format parquet --out session-{sid}.parquet, "
            f"then paperdesk backtest --data session-{sid}.parquet --session-db {where}")


def _one_strategy(config: AppConfig, kind: str, params: dict[str, Any] | None, symbol: str, timeframe: str,
                  stored: bool) -> AppConfig:
    data = config.model_dump(mode="json")
    data["strategies"] = [{"name": kind if _NAME.fullmatch(kind) else "strategy", "kind": kind, "symbols": [symbol],
                           "timeframe": timeframe, "params": params or {}}]
    return parse_config(data, "the backtest's config", stored=stored)


def _between(events: Iterable[MarketEvent], start_ns: int | None, end_ns: int | None) -> Iterator[MarketEvent]:
    if start_ns is None and end_ns is None:
        yield from events
        return
    for event in events:
        ts = event_time(event)
        if start_ns is not None and ts < start_ns:
            continue
        if end_ns is not None and ts >= end_ns:
            return
        yield event


def _lines(path: Path) -> int:
    """Events in a recording (its lines after the header), for the progress bar."""
    with open(path, "rb") as handle:
        return max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) - 1)


# ---- running -----------------------------------------------------------------------------------------------------

def _mark_every(config: AppConfig) -> int:
    """A saved backtest's equity marks come as often, in market time, as its paper session's would."""
    return max(1, int(config.session.equity_mark_seconds * config.venue.speed * NS_PER_SECOND))


def _check_count(count: int, plan: Plan) -> None:
    if count == 0:
        raise BacktestInputError(f"{plan.data}: no market events in the range asked for; nothing was replayed")


def _reporting(events: Iterable[MarketEvent], progress: Progress) -> Iterator[MarketEvent]:
    done = 0
    for event in events:
        yield event
        done += 1
        if done % PROGRESS_EVERY == 0:
            progress.update(done)
    progress.update(done)


def _stepper(progress: Progress) -> Callable[[int], None]:
    def step(done: int) -> None:
        if done % PROGRESS_EVERY == 0:
            progress.update(done)
    return step
