"""Builds an Engine from config and runs a paper session on the simulated venue.

The same builders serve the backtest path: only the clock and the data source differ.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from engine.clock import Clock, LiveClock, SimClock
from engine.config import AppConfig, InstrumentConfig
from engine.core import Engine
from engine.data.recording import append_events, write_header
from engine.data.synthetic import MarketDynamics, SyntheticMarket, SyntheticSymbol
from engine.execution.fill_model import FillModel
from engine.model.instrument import Instrument
from engine.snapshot import EngineSnapshot, take_snapshot
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
    return FillModel(int(v.latency_ms * 1_000_000), v.limit_fill, v.bar_slippage_bps)


def build_engine(config: AppConfig, clock: Clock, strategies: list[Strategy] | None = None,
                 fill_model: FillModel | None = None) -> Engine:
    """An engine for config's instruments and strategies (or the given ones) on clock."""
    return Engine(clock, [build_instrument(i) for i in config.instruments], config.session.starting_cash,
                  build_strategies(config) if strategies is None else strategies,
                  build_fill_model(config) if fill_model is None else fill_model)


def build_market(config: AppConfig) -> SyntheticMarket:
    symbols = [SyntheticSymbol(build_instrument(i), i.start_price, i.daily_vol, i.spread_bps, i.depth)
               for i in config.instruments]
    v = config.venue
    return SyntheticMarket(symbols, MarketDynamics(correlation=v.correlation, jumps_per_day=v.jumps_per_day),
                           v.seed)


class PaperSession:
    """A live paper session: the simulated market ticks on a LiveClock and the engine trades it.

    Everything runs on the caller's asyncio loop; the only disk work (an optional recording) is
    done in a worker thread so the loop never waits on it.
    """

    def __init__(self, config: AppConfig, record_to: Path | None = None) -> None:
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
        self._stop = asyncio.Event()
        self.recorded_events = 0
        self._record_file: TextIO | None = None

    def stop(self) -> None:
        """Ask the session to end at the next market update (safe from signal handlers)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def snapshot(self) -> EngineSnapshot:
        return take_snapshot(self.engine)

    async def run(self, duration: float | None = None,
                  on_status: Callable[[EngineSnapshot], None] | None = None) -> EngineSnapshot:
        """Trade until stop() or until duration wall seconds have passed; returns the final snapshot."""
        loop = asyncio.get_running_loop()
        venue = self.config.venue
        interval = venue.tick_interval_ms / 1000.0
        mark_every = self.config.session.equity_mark_seconds
        status_every = self.config.session.status_seconds
        started = loop.time()
        next_mark = next_status = next_flush = started
        last_ns = self.wall_clock.now_ns()
        engine, market, advance = self.engine, self.market, self.clock.advance_to
        if self.record_to is not None:
            self._record_file = await asyncio.to_thread(self._open_recording)
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
                advance(ts)
                for event in market.step(ts, max(1e-9, (ts - last_ns) / 1e9)):
                    engine.process(event)
                last_ns = ts
                now = loop.time()
                if now >= next_mark:
                    engine.mark_equity(ts)
                    next_mark = now + mark_every
                if on_status is not None and now >= next_status:
                    on_status(self.snapshot())
                    next_status = now + status_every
                if self._record_file is not None and now >= next_flush:
                    await self._flush_recording()
                    next_flush = now + 1.0
        finally:
            engine.mark_equity(self.clock.now_ns())
            if self._record_file is not None:
                await self._flush_recording()
                await asyncio.to_thread(self._record_file.close)
        return self.snapshot()

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
