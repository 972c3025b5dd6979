"""Builds an Engine from config and runs a paper session on the simulated venue.

The same builders serve the backtest path: only the clock and the data source differ.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import aiosqlite

from engine.clock import Clock, LiveClock, SimClock
from engine.config import AppConfig, InstrumentConfig
from engine.core import Engine
from engine.data.recording import append_events, write_header
from engine.data.synthetic import MarketDynamics, SyntheticMarket, SyntheticSymbol
from engine.execution.fill_model import FillModel
from engine.model.instrument import Instrument
from engine.risk.manager import RiskRules, StrategyRules
from engine.snapshot import EngineSnapshot, take_snapshot
from engine.store.commands import POLL_SECONDS, Command, CommandInbox
from engine.store.database import StoreError, WriterLock
from engine.store.journal import StoreJournal
from engine.store.recovery import Recovered, recover
from engine.store.sessions import STOPPED, open_session
from engine.store.writer import StoreWriter
from engine.strategy.base import Strategy
from engine.strategy.registry import strategy_class


def build_instrument(cfg: InstrumentConfig) -> Instrument:
    base, quote = cfg.symbol.split("/")
    return Instrument(cfg.symbol, base, quote, cfg.tick_size, cfg.lot_size, cfg.min_qty, cfg.min_notional,
                      cfg.maker_fee, cfg.taker_fee)


def build_strategies(config: AppConfig) -> list[Strategy]:
    return [strategy_class(s.kind)(s.name, s.symbols, s.timeframe, s.params) for s in config.strategies]


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


def build_engine(config: AppConfig, clock: Clock, strategies: list[Strategy] | None = None,
                 fill_model: FillModel | None = None) -> Engine:
    """An engine for config's instruments, strategies (or the given ones) and risk rules on clock."""
    return Engine(clock, [build_instrument(i) for i in config.instruments], config.session.starting_cash,
                  build_strategies(config) if strategies is None else strategies,
                  build_fill_model(config) if fill_model is None else fill_model,
                  risk_rules=build_risk_rules(config))


def build_market(config: AppConfig) -> SyntheticMarket:
    symbols = [SyntheticSymbol(build_instrument(i), i.start_price, i.daily_vol, i.spread_bps, i.depth)
               for i in config.instruments]
    v = config.venue
    return SyntheticMarket(symbols, MarketDynamics(correlation=v.correlation, jumps_per_day=v.jumps_per_day),
                           v.seed)


class PaperSession:
    """A live paper session: the simulated market ticks on a LiveClock and the engine trades it.

    With a database (db_path), open() resumes the database's latest session or starts one, and
    everything the engine does is persisted by a writer task; without one, nothing is kept.
    Everything runs on the caller's asyncio loop; disk work happens in worker threads.
    """

    def __init__(self, config: AppConfig, record_to: Path | None = None, db_path: Path | None = None,
                 new_session: bool = False) -> None:
        self.config = config
        # the wall clock paces the simulated market and stamps its events; the engine lives in event
        # time, so a replay of the recording sees exactly the times it saw, whatever the latency
        self.wall_clock = LiveClock(config.venue.speed)
        self.clock = SimClock(self.wall_clock.now_ns())
        self.engine = build_engine(config, self.clock)
        self.market = build_market(config)
        self.record_to = record_to
        if record_to is not None:
            self.engine.recording = []
        self.db_path = db_path
        self.new_session = new_session
        self.session_id: int | None = None
        self.recovered: Recovered | None = None
        self.journal: StoreJournal | None = None
        self.writer: StoreWriter | None = None
        self.stop_reason = "duration"
        self._lock = WriterLock(db_path) if db_path is not None else None
        self._closed = False
        self._stop = asyncio.Event()
        self._last_ns = self.clock.now_ns()
        self.recorded_events = 0
        self._record_file: TextIO | None = None
        self.inbox: CommandInbox | None = None
        self.on_command: Callable[[str], None] | None = None  # told each applied command's result line
        self._commands: list[Command] = []
        self._risk_changes = 0
        self._fills_saved = 0
        self.live: dict[str, Any] | None = None  # the latest live behaviour score
        self._feed_gaps: list[tuple[int, int]] = []
        self._plan_feed_gaps(self.clock.now_ns())

    def stop(self, reason: str = "stop requested") -> None:
        """Ask the session to end at the next market update (safe from signal handlers)."""
        if not self._stop.is_set():
            self.stop_reason = reason
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def snapshot(self) -> EngineSnapshot:
        snap = take_snapshot(self.engine)
        if self.writer is None:
            return snap
        writer = self.writer
        live = self.live or {}
        return replace(snap, session_id=self.session_id, restarts=self.recovered.restarts if self.recovered else 0,
                       behaviour_score=live.get("score"), behaviour_unexplained=live.get("unexplained"),
                       store_backlog=writer.backlog, store_waits=writer.waits, store_committed=writer.rows_committed,
                       store_error=writer.error or "")

    async def open(self) -> None:
        """Start or resume the database's session before trading (nothing to do without a database).

        Raises StoreError (RecoveryError included) when the database cannot be used or the session
        cannot be rebuilt exactly; nothing has traded then.
        """
        if self._lock is None or self.writer is not None:
            return
        assert self.db_path is not None
        started_ns = self.clock.now_ns()
        opened = await asyncio.to_thread(open_session, self.db_path, self._lock, self.config, self.new_session,
                                         started_ns)
        try:
            record = opened.record
            self.session_id = record.id
            if opened.resumed:
                # a fresh engine and market, rebuilt by replaying what the session saw
                self._plan_feed_gaps(record.market_start_ns)
                self.clock = SimClock(record.market_start_ns)
                self.engine = build_engine(self.config, self.clock)
                self.market = build_market(self.config)
                journal = StoreJournal(record.id, self.clock)
                self.engine.journal = journal
                self.recovered = await asyncio.to_thread(recover, self.db_path, record.id, record.restarts,
                                                         record.market_start_ns, self.engine, self.market, journal)
                last_ts = self.recovered.last_ts
                self.clock.advance_to(last_ts)
                self._last_ns = last_ts
                # market time resumes where it stopped: the simulated venue did not run while we were down
                self.wall_clock = LiveClock(self.config.venue.speed, start_ns=last_ts)
                if self.record_to is not None:
                    self.engine.recording = []
                journal.state_event("session", "RESUMED", self.recovered.summary(), last_ts)
                self.engine.log_event("INFO", f"resumed session {record.id}: {self.recovered.summary()}")
            else:
                journal = StoreJournal(record.id, self.clock)
                self.engine.journal = journal
                for strategy in self.engine.strategies.values():
                    journal.strategy(strategy)
                detail = f"config {record.config_hash[:12]}"
                if opened.ended_previous is not None:
                    detail += f"; ended session {opened.ended_previous} (--new-session)"
                journal.state_event("session", "STARTED", detail, started_ns)
            self.journal = journal
            store = self.config.store
            db = await aiosqlite.connect(self.db_path, isolation_level=None)
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA busy_timeout = 5000")
            self.writer = StoreWriter(db, journal, opened.audit_head, store.flush_ms, store.max_backlog_rows,
                                      store.write_retry_seconds)
            self.writer.start()
            self.inbox = CommandInbox(self.db_path, record.id)
        except BaseException:
            self._lock.release()
            raise

    async def run(self, duration: float | None = None,
                  on_status: Callable[[EngineSnapshot], None] | None = None) -> EngineSnapshot:
        """Trade until stop() or until duration wall seconds have passed; returns the final snapshot.

        Raises StoreError if the database stops accepting writes for longer than the store allows.
        """
        await self.open()
        loop = asyncio.get_running_loop()
        venue = self.config.venue
        interval = venue.tick_interval_ms / 1000.0
        mark_every = self.config.session.equity_mark_seconds
        status_every = self.config.session.status_seconds
        started = loop.time()
        next_mark = next_status = next_flush = started
        engine, journal, writer = self.engine, self.journal, self.writer
        failed: BaseException | None = None
        if self.record_to is not None:
            self._record_file = await asyncio.to_thread(self._open_recording)
        poller = asyncio.create_task(self._poll_commands(), name="paperdesk-commands") if self.inbox else None
        live_every = self.config.validation.live_interval_seconds
        scorer = (asyncio.create_task(self._live_scores(live_every), name="paperdesk-live-score")
                  if self.journal is not None and live_every is not None else None)
        try:
            while not self._stop.is_set():
                now = loop.time()
                if duration is not None and now - started >= duration:
                    break
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=interval)
                    break
                except TimeoutError:
                    pass
                ts = self.wall_clock.now_ns()
                self.step(ts)
                if self._commands:
                    self.apply_commands()
                if journal is not None:
                    if engine.risk.changes != self._risk_changes:
                        self._risk_changes = engine.risk.changes
                        journal.risk_view(self.clock.now_ns(), engine.risk.view())
                    if engine.account.fill_count != self._fills_saved:
                        # positions reach `status` within one flush of a fill, not at the next equity mark
                        self._fills_saved = engine.account.fill_count
                        journal.positions(engine, self.clock.now_ns())
                now = loop.time()
                if now >= next_mark:
                    engine.mark_equity(ts)
                    if journal is not None:
                        journal.mark(engine, ts)
                    next_mark = now + mark_every
                if on_status is not None and now >= next_status:
                    on_status(self.snapshot())
                    next_status = now + status_every
                if self._record_file is not None and now >= next_flush:
                    await self._flush_recording()
                    next_flush = now + 1.0
                if writer is not None:
                    writer.check()
                    await writer.make_room()
        except BaseException as exc:
            failed = exc
            raise
        finally:
            for task in (poller, scorer):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            engine.mark_equity(self.clock.now_ns())
            if self._record_file is not None:
                await self._flush_recording()
                await asyncio.to_thread(self._record_file.close)
            await self._close_store(failed)
        return self.snapshot()

    def _plan_feed_gaps(self, market_start_ns: int) -> None:
        """The config's rehearsed feed outages as market-time windows of this session."""
        minute = 60 * 1_000_000_000
        self._feed_gaps = [(market_start_ns + int(g.start_minutes * minute),
                            market_start_ns + int((g.start_minutes + g.minutes) * minute))
                           for g in self.config.venue.feed_gaps]

    def step(self, ts: int) -> None:
        """One market update at ts (after the last): the market moves, the engine trades, the venue state is kept."""
        self.clock.advance_to(ts)
        events = self.market.step(ts, max(1e-9, (ts - self._last_ns) / 1e9))
        if self._feed_gaps and any(start <= ts < end for start, end in self._feed_gaps):
            if self.journal is not None:  # the engine hears nothing; the venue's data is kept as missed
                for event in events:
                    self.journal.missed(event)
            events = []
        for event in events:
            self.engine.process(event)
        self._last_ns = ts
        if self.journal is not None:
            self.journal.venue_state(ts, self.market.state())

    def apply_commands(self) -> None:
        """Apply the operator commands the poller fetched, between market steps, and journal each."""
        commands, self._commands = self._commands, []
        for command in commands:
            self._apply_command(command.id, command.command, command.args, command.reason, command.source)

    def operator_command(self, command: str, args: dict[str, Any], reason: str, source: str) -> tuple[bool, str]:
        """A command from inside the process (the console's keys): applied now, saved like one from another shell."""
        return self._apply_command(None, command, args, reason, source)

    def _apply_command(self, command_id: int | None, command: str, args: dict[str, Any], reason: str,
                       source: str) -> tuple[bool, str]:
        engine = self.engine
        ts = self.clock.now_ns()
        ok, result = engine.risk.command(command, args, reason, ts)
        line = (f"command {command_id if command_id is not None else '(console)'} {command} from {source}"
                + (f" ({reason})" if reason else "") + (": " if ok else ": REFUSED: ") + result)
        engine.log_event("INFO" if ok else "WARN", line)
        if self.on_command is not None:
            self.on_command(line)
        if self.journal is not None:
            # saved with the market event it followed, so a restart replays it at the same point
            self.journal.command_applied(command_id, command, args, reason, source, ok, result, ts)
            self._risk_changes = engine.risk.changes
            self.journal.risk_view(ts, engine.risk.view())
        return ok, result

    async def _poll_commands(self) -> None:
        """Fetch queued commands every POLL_SECONDS in a worker thread; the run loop applies them."""
        inbox = self.inbox
        assert inbox is not None
        try:
            while True:
                try:
                    self._commands.extend(await asyncio.to_thread(inbox.fetch))
                except Exception as exc:  # a busy or briefly unreadable database: say so and poll again
                    self.engine.log_event("WARN", f"cannot read operator commands: {type(exc).__name__}: {exc}")
                await asyncio.sleep(POLL_SECONDS)
        finally:
            await asyncio.to_thread(inbox.close)

    async def _live_scores(self, every: float) -> None:
        """Every `every` wall seconds, score the session so far in a child process and journal the result."""
        while True:
            await asyncio.sleep(every)
            summary = await self.live_score()
            if summary is not None and self.journal is not None:
                self.live = summary
                self.journal.behaviour_score(summary["market_ts"] or self.clock.now_ns(), summary["market_seq"],
                                             summary["score"], summary)

    async def live_score(self) -> dict[str, Any] | None:
        """The behaviour score over what the session has committed, computed by `engine.validation.live`."""
        assert self.db_path is not None and self.session_id is not None
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engine.validation.live", str(self.db_path), str(self.session_id),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent)
        try:
            out, err = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            self.engine.log_event("WARN", f"live behaviour score failed (exit {proc.returncode}): {last[0]}")
            return None
        summary: dict[str, Any] = json.loads(out)
        return summary

    async def close(self) -> None:
        """Close the store if run() never did (it closes it itself); safe to call twice."""
        await self._close_store(None)

    async def _close_store(self, failed: BaseException | None) -> None:
        if self.writer is None or self.journal is None or self._lock is None or self._closed:
            return
        self._closed = True
        try:
            if failed is None or not isinstance(failed, StoreError):
                self.journal.mark(self.engine, self.clock.now_ns())
                reason = self.stop_reason if failed is None else f"error: {type(failed).__name__}: {failed}"
                self.journal.state_event("session", "STOPPED", reason, self.clock.now_ns())
                await self.writer.end_session(STOPPED, reason)
        finally:
            try:
                await self.writer.close()  # always: its thread would keep the process from exiting
            finally:
                self._lock.release()

    def _open_recording(self) -> TextIO:
        out = open(self.record_to, "w", encoding="utf-8")  # closed at the end of run()
        write_header(out)
        return out

    async def _flush_recording(self) -> None:
        # swap the buffer out, so memory holds at most one flush interval of market data
        new, self.engine.recording = self.engine.recording, []
        self.recorded_events += len(new)
        if new:
            out = self._record_file

            def write() -> None:
                append_events(out, new)
                out.flush()

            await asyncio.to_thread(write)
