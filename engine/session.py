"""A live paper session: a venue's feed drives the engine on market time, and the store keeps everything.

With a database (db_path), open() resumes the database's latest session or starts one, and
everything the engine does is persisted by a writer task; without one, nothing is kept. The feed
and the broker come from the venue config names (engine/venues.py), or from the caller; a venue whose
instruments only it knows (a live exchange) lists them in open(), and the engine is built there.
Everything runs on the caller's asyncio loop; disk work happens in worker threads.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite

from engine.breakers.guard import STORE
from engine.breakers.trading_state import PORTFOLIO, TradingState
from engine.brokers.broker import require_paper
from engine.brokers.transcript import HoldsOrders, Transcribed
from engine.clock import LET_IN_EVERY_S, LiveClock, LoopShare, SimClock
from engine.commands import STORE_COMMAND, OperatorCommand
from engine.config import AppConfig
from engine.core import Engine
from engine.data.feed import Feed, FeedBatch, HasHistory, SteppedFeed
from engine.data.feed_gaps import RehearsedGaps
from engine.model.event_log import EventLevel
from engine.model.market import Bar, Heartbeat, MarketEvent
from engine.retention import FORGET_SECONDS, forget_history
from engine.runtime import build_engine, build_instruments
from engine.session_tasks import Recorder, live_score, poll_commands, score_every
from engine.snapshot import EngineSnapshot, VenueHealth, take_snapshot, venue_health
from engine.store.commands import Command, CommandInbox
from engine.store.database import StoreError, WriterLock
from engine.store.journal import StoreJournal
from engine.store.recovery import Recovered, recover
from engine.store.sessions import STOPPED, SessionRecord, mark_resumed, open_session
from engine.store.writer import StoreWriter
from engine.venues import ListsInstruments, ReportsDrops, ReportsGaps, Venue, venue_for

HEARTBEAT_NS = 1_000_000_000  # a silent feed still moves market time, once a market second


class StoppedBeforeStart(BaseException):
    """stop() came while open() could still give up with the database as it was (nothing written).

    A BaseException, like KeyboardInterrupt: recovery's handling of replay errors must not take it for one."""


class _ResumeJournal(StoreJournal):
    """The journal of a resumed session: a stop request ends its replay between two market events (recovery runs
    it in a worker thread, which nothing else can interrupt)."""

    def __init__(self, session_id: int, clock: SimClock, stop: asyncio.Event) -> None:
        super().__init__(session_id, clock)
        self._stop = stop

    def market(self, event: MarketEvent) -> None:
        if self.replaying and self._stop.is_set():
            raise StoppedBeforeStart(f"stopped while replaying event {self.market_seq + 1}")
        super().market(event)


log = logging.getLogger("paperdesk.session")

_FROZEN = False


FULL_COLLECTION_EVERY = 100  # younger collections between two full ones (Python's default: 10)


def _freeze_start_up() -> None:
    """What start-up built (imports, ccxt's market tables, a resume's replay) lives as long as the process: out of the
    collector's reach, a full collection no longer pauses the loop ~100 ms walking it. Once per process, after a
    collection, so only live objects are frozen (a process opening many sessions, like the tests, keeps no garbage).
    Full collections, each a pause of the whole loop that grows with what the session keeps, come ten times less
    often: at 500 order events a second with the console, 55 a minute (up to 191 ms each) became 6
    (bench/console_load.py); garbage that only a full collection finds waits that much longer."""
    global _FROZEN
    if not _FROZEN:
        _FROZEN = True
        gc.collect()
        gc.freeze()
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


class PaperSession:
    """The venue's feed ticks on a LiveClock and the engine trades it, in event time."""

    def __init__(self, config: AppConfig, record_to: Path | None = None, db_path: Path | None = None,
                 new_session: bool = False, venue: Venue | None = None) -> None:
        self.config = config
        self.venue = venue if venue is not None else venue_for(config)
        # the wall clock paces the feed and stamps its events; the engine lives in event time, so a
        # replay of the recording sees exactly the times it saw, whatever the latency
        self.wall_clock = LiveClock(config.venue.speed)
        self.clock = SimClock(self.wall_clock.now_ns())
        self.recorder = Recorder(record_to) if record_to is not None else None
        self._engine = None if isinstance(self.venue, ListsInstruments) else self._build_engine(self.clock)
        self.journal: StoreJournal | None = None
        self.feed = self._build_feed(self.clock.now_ns())
        self.db_path = db_path
        self.new_session = new_session
        self.session_id: int | None = None
        self.recovered: Recovered | None = None
        self.writer: StoreWriter | None = None
        self.stop_reason = "duration"
        self._lock = WriterLock(db_path) if db_path is not None else None
        self._closed = False
        self._stop = asyncio.Event()
        self._last_event_ns = self.clock.now_ns()
        self._resume_gaps: dict[str, int] = {}  # symbol -> where its lost data starts, until its first live event
        self.inbox: CommandInbox | None = None
        self.on_command: Callable[[str], None] | None = None  # told each applied command's result line
        self._commands: list[Command] = []
        self._risk_changes = 0
        self._overruns: dict[str, int] = {}  # callbacks over the budget, by strategy
        self._fills_saved = 0
        self.live: dict[str, Any] | None = None  # the latest live behaviour score

    @property
    def engine(self) -> Engine:
        """The engine; a venue that lists its own instruments has one once open() asked it for them."""
        if self._engine is None:
            raise RuntimeError(f"{self.config.venue.kind} venue: the engine is built by open(), once the venue "
                               "has listed its instruments")
        return self._engine

    @property
    def recorded_events(self) -> int:
        return self.recorder.events if self.recorder is not None else 0

    def _build_engine(self, clock: SimClock) -> Engine:
        config = self.config
        broker = self.venue.broker(config, clock, build_instruments(config))
        if not broker.capabilities.simulated:
            broker = Transcribed(broker)  # its reports are saved as heard, so a resume can rebuild the session
        engine = build_engine(config, clock, broker=broker)
        # a symbol that never delivers anything is as stale as one that stopped
        engine.guard.health.expect(engine.instruments, clock.now_ns())
        if self.recorder is not None:
            engine.recording = []
        return engine

    def _build_feed(self, market_start_ns: int, feed: Feed | None = None) -> Feed:
        """The venue's feed (a new one, or the given live one kept across a resume), behind the config's rehearsed
        outages (market-time windows of this session)."""
        minute = 60 * 1_000_000_000
        windows = [(market_start_ns + int(g.start_minutes * minute),
                    market_start_ns + int((g.start_minutes + g.minutes) * minute))
                   for g in self.config.venue.feed_gaps]
        if feed is None:
            feed = self.venue.feed(self.config, self.wall_clock)
        if isinstance(feed, ReportsGaps):
            feed.on_gap = self._feed_gap
        if isinstance(feed, ReportsDrops):
            feed.on_dropped = self._feed_dropped
        if not windows:
            return feed
        return RehearsedGaps(feed, windows, self._missed)

    def _feed_gap(self, symbol: str, start_ns: int, end_ns: int, reason: str) -> None:
        """A live feed recovered from an outage: the venue's data in it is lost, so the gap itself is recorded."""
        if self._engine is None:
            return
        line = f"{symbol}: {(end_ns - start_ns) / 1e9:.3g} s without reliable data ({reason})"
        self._engine.log_event(EventLevel.WARN, f"feed gap on {line}")
        if self.journal is not None:
            self.journal.state_event("feed", "GAP", line, start_ns)

    def _feed_dropped(self, line: str) -> None:
        """A live feed dropped an update the engine could not use: the operator hears of it (the feed rations it)."""
        if self._engine is not None:
            self._engine.log_event(EventLevel.WARN, f"market data {line}")

    def _missed(self, event: Any) -> None:
        if self.journal is not None:  # the engine hears nothing; the venue's data is kept as missed
            self.journal.missed(event)

    def stop(self, reason: str = "stop requested") -> None:
        """Ask the session to end at the next market update (safe from signal handlers)."""
        if not self._stop.is_set():
            self.stop_reason = reason
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def venue_health(self) -> VenueHealth:
        return venue_health(self.config.venue, self.engine.broker, self.feed.health(), self.wall_clock)

    def snapshot(self) -> EngineSnapshot:
        snap = take_snapshot(self.engine)
        markers = snap.markers
        if self.recovered is not None and self.recovered.restarts:  # where this run picked the session up
            markers = tuple(sorted(((self.recovered.last_ts, f"restart {self.recovered.restarts}"), *markers)))
        snap = replace(snap, venue=self.venue_health(), speed=self.wall_clock.speed, markers=markers)
        writer = self.writer
        if writer is None:
            return replace(snap, feed=self.feed.health())
        live = self.live or {}
        own = live.get("strategies") or {}
        strategies = tuple(replace(s, behaviour=own.get(s.name, {}).get("score")) for s in snap.strategies)
        return replace(snap, feed=self.feed.health(), session_id=self.session_id, strategies=strategies,
                       restarts=self.recovered.restarts if self.recovered else 0,
                       behaviour_score=live.get("score"), behaviour_unexplained=live.get("unexplained"),
                       store_backlog=writer.backlog, store_waits=writer.waits, store_committed=writer.rows_committed,
                       store_error=writer.error or "")

    async def open(self) -> None:
        """Connect the venue, then start or resume the database's session before trading.

        Raises NotPaperVenue for a venue that cannot prove it is paper, and StoreError (RecoveryError
        included) when the database cannot be used or the session cannot be rebuilt exactly; nothing
        has traded then, and a refused resume has written nothing to the database. Raises
        StoppedBeforeStart if stop() comes before the session's first write (a resume's replay included);
        a stop after it leaves the session opened, and run() then closes it at once.
        """
        if self.writer is not None:
            return
        try:
            await self._open()
        except BaseException:
            await self.feed.close()  # a live venue's clients hold connections
            if self._engine is not None:
                await self._engine.broker.close()
            raise
        _freeze_start_up()

    async def _open(self) -> None:
        if self._engine is None:
            assert isinstance(self.venue, ListsInstruments)
            # the config as the venue lists its instruments: what the engine trades and the session stores
            self.config = await self.venue.listed(self.config)
            self._engine = self._build_engine(self.clock)
        require_paper(self.engine.broker)
        await self.engine.broker.connect()
        await self.feed.connect()
        await self.feed.subscribe(list(self.engine.instruments))
        history = await self._history()  # before the first write: a venue that cannot give it starts nothing
        if self._lock is None:
            self._warm_up(history)
            return
        assert self.db_path is not None
        self._give_up_if_stopping()
        started_ns = self.clock.now_ns()
        opened = await asyncio.to_thread(open_session, self.db_path, self._lock, self.config, self.new_session,
                                         started_ns)
        try:
            record = opened.record
            self.session_id = record.id
            if opened.resumed:
                await self._resume(record)
            else:
                journal = StoreJournal(record.id, self.clock)
                self.journal = self.engine.journal = journal
                for strategy in self.engine.strategies.values():
                    journal.strategy(strategy)
                detail = f"config {record.config_hash[:12]}"
                if opened.ended_previous is not None:
                    detail += f"; ended session {opened.ended_previous} (--new-session)"
                journal.state_event("session", "STARTED", detail, started_ns)
                if isinstance(self.engine.broker, Transcribed):
                    self.engine.broker.attach(journal.venue_event)
                self._warm_up(history)  # saved like any market data: a resume or the twin replays it
            assert self.journal is not None
            store = self.config.store
            db = await aiosqlite.connect(self.db_path, isolation_level=None)
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA busy_timeout = 5000")
            self.writer = StoreWriter(db, self.journal, opened.audit_head, store.flush_ms, store.max_backlog_rows,
                                      store.write_retry_seconds)
            self.writer.start()
            self.inbox = CommandInbox(self.db_path, record.id)
        except BaseException:
            self._lock.release()
            raise

    async def _resume(self, record: SessionRecord) -> None:
        """A fresh engine and feed, rebuilt by replaying what the session saw; only then is the session marked
        running again (restarts counted), so a refused resume leaves the database as it was.

        A venue whose market went on meanwhile (live_market) keeps the feed open() connected, so what arrives during
        the replay waits for after it; market time then continues at the venue's time now, and each symbol's data
        from the end of the recording to its first live event is recorded as a feed gap."""
        assert self.db_path is not None
        session_id, market_start_ns = record.id, record.market_start_ns
        await self.engine.broker.close()  # the rebuilt engine has its own, connected once it is rebuilt
        self.clock = SimClock(market_start_ns)
        self._engine = self._build_engine(self.clock)
        broker = self.engine.broker
        caps = broker.capabilities
        live = self.feed.feed if isinstance(self.feed, RehearsedGaps) else self.feed
        held: list[tuple[str, int, int, str]] = []
        dropped: list[str] = []
        if not caps.live_market:
            await self.feed.close()
        else:
            # recovery's worker thread owns the engine until the replay is done: what the feed reports waits for it
            if isinstance(live, ReportsGaps):
                live.on_gap = lambda symbol, start, end, reason: held.append((symbol, start, end, reason))
            if isinstance(live, ReportsDrops):
                live.on_dropped = dropped.append
        journal = _ResumeJournal(session_id, self.clock, self._stop)
        self.journal = self.engine.journal = journal
        self.recovered = await asyncio.to_thread(recover, self.db_path, session_id, record.restarts, market_start_ns,
                                                 self.engine, journal)
        last_ts = self.recovered.last_ts
        self.clock.advance_to(last_ts)
        self._last_event_ns = last_ts
        if caps.live_market:
            # the exchange's clock is now: the first live event moves market time past the downtime (a timed state
            # that ran out meanwhile ends there), and the data lost in between is a gap
            self.feed = self._build_feed(market_start_ns, live)  # rehearsed outages in this session's market time
            self._resume_gaps = dict.fromkeys(self.engine.instruments, last_ts)
        else:
            # market time resumes where it stopped: the simulated venue did not run while we were down
            self.wall_clock = LiveClock(self.config.venue.speed, start_ns=last_ts)
            self.feed = self._build_feed(market_start_ns)
            if self.recovered.feed_state is not None:
                self.feed.restore(self.recovered.feed_state)
            await self.feed.connect()
            await self.feed.subscribe(list(self.engine.instruments))
        require_paper(broker)
        venue = broker.inner if isinstance(broker, Transcribed) else None
        if isinstance(venue, HoldsOrders) and self.recovered.venue is not None:
            venue.adopt(self.recovered.venue)  # connect() reconciles: what the venue did while we were down
        await broker.connect()
        self._give_up_if_stopping()
        await asyncio.to_thread(mark_resumed, self.db_path, record)  # rebuilt exactly: the first write
        if isinstance(broker, Transcribed):
            broker.attach(journal.venue_event)
        journal.state_event("session", "RESUMED", self.recovered.summary(), last_ts)
        self.engine.log_event(EventLevel.INFO, f"resumed session {session_id}: {self.recovered.summary()}")
        for gap in held:
            self._feed_gap(*gap)
        for line in dropped:
            self._feed_dropped(line)
        if isinstance(venue, HoldsOrders):
            self._reconciled(venue)

    def _reconciled(self, venue: HoldsOrders) -> None:
        """Say what reconciling with the venue found; what it cannot explain halts trading (saved as a command, so a
        later replay halts at the same point)."""
        found, name = venue.reconciliation or "nothing to reconcile", self.engine.broker.capabilities.name
        if venue.mismatch is None:
            self.engine.log_event(EventLevel.INFO, f"reconciled with {name}: {found}")
            return
        self.engine.log_event(EventLevel.ERROR, f"reconciliation with {name} found what this session cannot "
                                                f"explain: {venue.mismatch}")
        self._apply_command(None, OperatorCommand.HALT.value, {}, f"reconciliation: {venue.mismatch}",
                            "reconciliation")

    async def _history(self) -> tuple[list[Bar], list[str]]:
        """The bars of history the strategies declared (lookback), from a venue that keeps it, and what it lacks."""
        feed = self.feed.feed if isinstance(self.feed, RehearsedGaps) else self.feed
        wants: dict[tuple[str, str], int] = {}
        for strategy in self.engine.strategies.values():
            count = strategy.lookback()
            for symbol in strategy.symbols if count > 0 else ():
                for timeframe in strategy.timeframes:
                    wants[(symbol, timeframe)] = max(count, wants.get((symbol, timeframe), 0))
        if not wants or not isinstance(feed, HasHistory):
            return [], []
        return await feed.history(wants, self.clock.now_ns())

    def _warm_up(self, history: tuple[list[Bar], list[str]]) -> None:
        bars, notes = history
        for note in notes:
            self.engine.log_event(EventLevel.WARN, note)
            log.warning("%s", note)
        if not bars:
            return
        self.apply(FeedBatch(self.clock.now_ns(), list(bars)))
        counts: dict[str, int] = {}
        for bar in bars:
            key = f"{bar.symbol} {bar.timeframe}"
            counts[key] = counts.get(key, 0) + 1
        self.engine.log_event(EventLevel.INFO, f"warmed up on {len(bars)} bars of the venue's history "
                                               f"({', '.join(f'{k}: {n}' for k, n in counts.items())}); the "
                                               "decisions on them are recorded, not traded")

    def _give_up_if_stopping(self) -> None:
        """Before the session's first write: a stop requested by now ends open() with the database untouched."""
        if self._stop.is_set():
            raise StoppedBeforeStart(f"{self.stop_reason} before the session started")

    async def run(self, duration: float | None = None,
                  on_status: Callable[[EngineSnapshot], None] | None = None) -> EngineSnapshot:
        """Trade until stop() or until duration wall seconds have passed; returns the final snapshot.

        Raises StoreError if the database stops accepting writes for longer than the store allows.
        """
        await self.open()
        loop = asyncio.get_running_loop()
        mark_every = self.config.session.equity_mark_seconds
        status_every = self.config.session.status_seconds
        started = loop.time()
        next_mark = next_status = next_flush = next_forget = started
        engine, journal, writer = self.engine, self.journal, self.writer
        engine.budget_s = self.config.session.strategy_budget_ms / 1000.0  # after a resume's replay: it is not timed
        if journal is not None:
            journal.venue_view = lambda: self.venue_health().to_json()
        failed: BaseException | None = None
        if self.recorder is not None:
            await self.recorder.open()
        tasks = []
        if self.inbox is not None:
            tasks.append(asyncio.create_task(poll_commands(self.inbox, self._commands, engine.log_event),
                                             name="paperdesk-commands"))
        live_every = self.config.validation.live_interval_seconds
        if self.journal is not None and live_every is not None:
            tasks.append(asyncio.create_task(score_every(live_every, self._score, engine.log_event),
                                             name="paperdesk-live-score"))
        try:
            while not self._stop.is_set():
                if duration is not None and loop.time() - started >= duration:
                    break
                batch = await self._receive()
                if batch is None:
                    break
                await self.apply_live(batch)
                if engine.overruns:
                    self._pause_slow_strategies()
                if self._commands:
                    self.apply_commands()
                if journal is not None:
                    if engine.state_changes != self._risk_changes:
                        self._risk_changes = engine.state_changes
                        journal.risk_view(self.clock.now_ns(), engine.risk_view())
                    if engine.account.fill_count != self._fills_saved:
                        # positions reach `status` within one flush of a fill, not at the next equity mark
                        self._fills_saved = engine.account.fill_count
                        journal.positions(engine, self.clock.now_ns())
                now = loop.time()
                if now >= next_mark:
                    engine.mark_equity(self.clock.now_ns())
                    if journal is not None:
                        journal.mark(engine, self.clock.now_ns())
                    next_mark = now + mark_every
                if on_status is not None and now >= next_status:
                    on_status(self.snapshot())
                    next_status = now + status_every
                if self.recorder is not None and now >= next_flush:
                    await self._flush_recording()
                    next_flush = now + 1.0
                if journal is not None and now >= next_forget:
                    forget_history(engine, journal)
                    next_forget = now + FORGET_SECONDS
                if writer is not None:
                    writer.check()
                    # the database refusing writes: nothing opens a position while the writer retries
                    restricted = STORE in engine.guard.states.sources(PORTFOLIO)
                    cause: str | None = None
                    if writer.error is not None and not restricted:
                        cause = (f"cannot write to the database ({writer.error}); retrying for up to "
                                 f"{writer.retry_seconds:g} s, then trading stops")
                    if cause is not None or (writer.error is None and restricted):
                        ts = self.clock.now_ns()
                        ok, result = engine.command(STORE_COMMAND, {"cause": cause}, cause or "writes again", ts)
                        if journal is not None:
                            # saved like a command, after the market event it followed: a replay never sees the
                            # store fail, so it needs this row to restrict (and lift) at the same point
                            journal.command_applied(None, STORE_COMMAND, {"cause": cause}, cause or "writes again",
                                                    STORE, ok, result, ts)
                    await writer.make_room()
        except BaseException as exc:
            failed = exc
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            engine.mark_equity(self.clock.now_ns())
            if self.recorder is not None:
                await self._flush_recording()
                await self.recorder.close()
            await self.feed.close()
            await engine.broker.close()  # a venue holding orders keeps a client (and its connections) of its own
            await self._close_store(failed)
        return self.snapshot()

    async def _receive(self) -> FeedBatch | None:
        """The feed's next batch, or None when stop() came first."""
        receive = asyncio.ensure_future(self.feed.receive())
        stop = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
        if receive in done:
            stop.cancel()
            return receive.result()
        receive.cancel()
        await asyncio.gather(receive, return_exceptions=True)
        return None

    def apply(self, batch: FeedBatch) -> None:
        """One batch from the feed: each event at its own market time, then a heartbeat if the feed was silent,
        then the venue's state kept for a resume."""
        for event in batch.events:
            self._market_event(event)
        self._batch_end(batch)

    async def apply_live(self, batch: FeedBatch) -> None:
        """apply() as a running session does it: every LET_IN_EVERY_S, between two market events, the loop runs what
        waits (a key, a paint). A command applied there is saved after the market event it followed, which is where
        a replay applies it; the writer takes none of the batch's rows until the venue state that ends it is queued
        (recovery checks the two agree)."""
        journal = self.journal
        events = iter(batch.events)
        share = LoopShare(LET_IN_EVERY_S)  # 50 symbols' updates took 20-50 ms in one go
        try:
            for event in events:
                self._market_event(event)
                if share.due():
                    if journal is not None:
                        journal.batch_open = True
                    await share.let_in()
        except asyncio.CancelledError:
            # stopped within a batch: it still ends whole, so what is saved is something a resume can replay
            for event in events:
                self._market_event(event)
            self._batch_end(batch)
            raise
        finally:
            if journal is not None:
                journal.batch_open = False
        self._batch_end(batch)

    def _market_event(self, event: MarketEvent) -> None:
        clock = self.clock
        ts = event.end if type(event) is Bar else event.ts
        clock.catch_up(ts)  # market time never runs back, whatever a venue stamps (replay() does the same)
        if self._resume_gaps and event.symbol in self._resume_gaps:
            self._feed_gap(event.symbol, self._resume_gaps.pop(event.symbol), clock.now_ns(),
                           "the session was down; resumed on live data")
        self.engine.process(event)

    def _batch_end(self, batch: FeedBatch) -> None:
        clock, engine = self.clock, self.engine
        now = max(batch.received_ns, clock.now_ns())
        if batch.events:
            self._last_event_ns = now
        elif now - self._last_event_ns >= HEARTBEAT_NS or self._venue_waiting():
            clock.advance_to(now)
            engine.process(Heartbeat(now))
            self._last_event_ns = now
        if self.journal is not None:
            state = self.feed.state()
            # a live venue's feed keeps no state, but the row still marks where the durable cut ends (recovery's check)
            self.journal.venue_state(now, {} if state is None else state)

    def _pause_slow_strategies(self) -> None:
        """A strategy over its callback budget strategy_overruns times is paused, as a saved command: a replay is
        not timed, so it pauses at the same point only because the command says so."""
        overruns, self.engine.overruns = self.engine.overruns, []
        session = self.config.session
        states = self.engine.guard.states
        for name, callback, took in overruns:
            if states.state(name) is not TradingState.ACTIVE:
                continue  # already held back (by this or anything else): only a strategy let trade is counted
            count = self._overruns[name] = self._overruns.get(name, 0) + 1
            if count == session.strategy_overruns:
                self._overruns[name] = 0  # resumed, it is paused again after as many more
                self._apply_command(None, OperatorCommand.PAUSE.value, {"strategy": name},
                                    f"{name} took {took * 1000:.0f} ms in {callback}, over its "
                                    f"{session.strategy_budget_ms:g} ms budget {count} times", "engine")

    def _venue_waiting(self) -> bool:
        """A venue holding our orders reported something: a quiet market must not keep it from the engine (it hears
        such a venue only at a market event), so the session's clock ticks at once."""
        broker = self._engine.broker if self._engine is not None else None
        return isinstance(broker, Transcribed) and broker.waiting

    def step(self, ts: int) -> None:
        """One market update at ts, taken from a feed that can be stepped by hand (tests, benchmarks)."""
        feed = self.feed
        if not isinstance(feed, SteppedFeed):
            raise TypeError(f"feed {feed.name!r} cannot be stepped by hand")
        self.apply(feed.step_to(ts))

    def apply_commands(self) -> None:
        """Apply the operator commands the poller fetched, between market steps, and journal each."""
        commands, self._commands[:] = list(self._commands), []
        for command in commands:
            self._apply_command(command.id, command.command, command.args, command.reason, command.source)

    def operator_command(self, command: str, args: dict[str, Any], reason: str, source: str) -> tuple[bool, str]:
        """A command from inside the process (the console's keys): applied now, saved like one from another shell."""
        return self._apply_command(None, command, args, reason, source)

    def _apply_command(self, command_id: int | None, command: str, args: dict[str, Any], reason: str,
                       source: str) -> tuple[bool, str]:
        engine = self.engine
        ts = self.clock.now_ns()
        ok, result = engine.command(command, args, reason, ts)
        line = (f"command {'' if command_id is None else f'{command_id} '}{command} from {source}"
                + (f" ({reason})" if reason else "") + (": " if ok else ": REFUSED: ") + result)
        engine.log_event(EventLevel.INFO if ok else EventLevel.WARN, line)
        if self.on_command is not None:
            self.on_command(line)
        if self.journal is not None:
            # saved with the market event it followed, so a restart replays it at the same point
            self.journal.command_applied(command_id, command, args, reason, source, ok, result, ts)
            self._risk_changes = engine.state_changes
            self.journal.risk_view(ts, engine.risk_view())
        return ok, result

    async def _score(self) -> None:
        summary = await self.live_score()
        if summary is not None and self.journal is not None:
            self.live = summary
            self.journal.behaviour_score(summary["market_ts"] or self.clock.now_ns(), summary["market_seq"],
                                         summary["score"], summary)

    async def live_score(self) -> dict[str, Any] | None:
        """The behaviour score over what the session has committed, computed by `engine.validation.live`."""
        assert self.db_path is not None and self.session_id is not None
        return await live_score(self.db_path, self.session_id, self.engine.log_event)

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

    async def _flush_recording(self) -> None:
        # swap the buffer out, so memory holds at most one flush interval of market data
        assert self.recorder is not None
        new, self.engine.recording = self.engine.recording or [], []
        await self.recorder.flush(new)
