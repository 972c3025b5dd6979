"""The console under load: 50 symbols and ~500 order events a second through a real session into the real app.

Usage: bench/console_load.py [--seconds 600] [--symbols 50] [--tick-ms 50] [--refresh-hz N] [--no-db] [--no-console]

A paper session on the simulated venue (50 symbols, a market update every --tick-ms of wall time after the last one
is processed, speed 1: market time is wall time) runs a synthetic strategy defined here, OrderChurn: every 0.2 s on
each symbol it cancels its resting limit order and rests a new one 10% under the last trade (never filled): two order
events (CANCELED, ACCEPTED), so 50 x 2 x 5 = 500 a second, through the engine's own order path (risk checks, the
venue simulator, the order flow the console shows, the database). Fewer than 500 measured means the event loop did
not get through the market updates in time, or (with a console) the halts: each key press halts the portfolio until
r resumes it, and meanwhile its orders are denied, so the next action has nothing to cancel (with presses 38 s
apart instead of 5, 496 a second over 40 s); the row under it counts only the seconds no halt touched. (The
engine's log, which the console's event log shows, gets a line for each ACCEPTED but none for a strategy's cancel:
250 lines a second.) The pre-trade limits that would refuse such
churn (submit rate, exposure, correlation, VaR) and the volatility breaker are off; the live behaviour score is off
(the engine's work, not the console's). The session saves to a database in a temporary folder unless --no-db;
--no-console measures the session alone, for comparison.

The console is PaperdeskApp over the session's ThreadDesk, run headless (App.run_test) at 160x45, with the session
trading on a loop of its own in another thread (engine/session_thread.py), as `paperdesk run` runs them. Measured,
each from outside the app:
- panel refreshes: the app's refresh_view calls per second on its timer (each takes one snapshot and fills every
  panel from it; the refresh after each delivered command is not counted), and how long each refresh took (any);
  --refresh-hz sets the app's REFRESH_SECONDS to see whether it keeps up at that rate;
- key to command: Pilot presses h (halt), time until the desk has the halt applied; then r resumes. Every 5 s;
- event-loop lag: a task sleeping 10 ms on the session's loop, the oversleep of each wake-up (the goal's figure);
  with a console, the same on the console's loop (how late a key or a frame can be);
- full garbage collections (generation 2), each a pause of the whole process: how many and the longest;
- memory: the process's RSS every 10 s, also less what the bench's own series take by then (their growth is the
  bench's, not the app's), and the engine's orders and decisions kept then. Each of these progress
  lines also gives the last 10 s's loop lag p99 and full collections, and the rows the writer has not saved yet.
Goals (issue 15): refresh >= 10 Hz, key to command < 50 ms, loop lag p99 < 5 ms, memory flat over 10 minutes.
Last line, for scripts: seconds= order_events_per_s= refresh_hz= key_ms_p50= key_ms_max= lag_ms_p99= rss_mb_...
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from console.app import PaperdeskApp
from console.desk import ThreadDesk
from engine.config import AppConfig, parse_config
from engine.model.market import Bar, TradeTick
from engine.session import PaperSession
from engine.session_thread import SessionThread
from engine.strategy.base import Strategy
from engine.strategy.registry import register

LAG_TICK_S = 0.010
KEY_EVERY_S = 5.0
MEMORY_EVERY_S = 10.0
PAGE = os.sysconf("SC_PAGE_SIZE")
ACT_EVERY_NS = 200_000_000  # 50 symbols x 2 events x 5 a second = 500 order events a second


@register
class OrderChurn(Strategy):
    """Every ACT_EVERY_NS of market time, on each symbol: cancel the resting order and rest a new limit buy 10% under
    the last trade (two order events: CANCELED and ACCEPTED)."""

    kind = "bench_order_churn"

    def on_start(self) -> None:
        self.due: dict[str, int] = {}  # symbol -> market time of its next action
        self.canceled = 0

    def on_tick(self, tick: TradeTick) -> None:
        due = self.due.get(tick.symbol, tick.ts)
        if tick.ts < due:
            return
        # on schedule, not ACT_EVERY_NS after whichever update came: late updates catch up (once per update)
        self.due[tick.symbol] = max(due + ACT_EVERY_NS, tick.ts - ACT_EVERY_NS)
        for order in self.open_orders(tick.symbol):
            self.canceled += self.cancel(order.client_id, "churn")
        self.buy(tick.symbol, round(20.0 / tick.price, 3), price=round(tick.price * 0.9, 2), reason="churn")

    def on_bar(self, bar: Bar) -> None:
        self.hold(bar.symbol, reason="churns on trades")


def load_config(symbols: int, tick_ms: float, db: Path | None) -> AppConfig:
    instruments = [{"symbol": f"C{i:02d}/USDT", "tick_size": 0.01, "lot_size": 0.001, "min_qty": 0.001,
                    "min_notional": 10.0, "start_price": 100.0 + i, "daily_vol": 0.3, "spread_bps": 2.0,
                    "depth": 50.0} for i in range(symbols)]
    data: dict[str, Any] = {
        "session": {"starting_cash": 1_000_000.0, "equity_mark_seconds": 1.0, "status_seconds": 5.0},
        "venue": {"seed": 5, "speed": 1.0, "tick_interval_ms": tick_ms, "latency_ms": 0.0},
        "risk": {"max_order_notional": None, "max_position_notional": None, "max_gross_exposure": None,
                 "max_net_exposure": None, "max_open_positions": None, "max_trades_per_day": None,
                 "max_submit_rate": None, "max_short_exposure": None, "correlation_limit": None, "var_limit": None},
        "breakers": {"volatility_spike": None},
        "validation": {"live_interval_seconds": None},
        "instruments": instruments,
        "strategies": [{"name": "churn", "kind": OrderChurn.kind, "symbols": [i["symbol"] for i in instruments],
                        "timeframe": "1m"}],
    }
    if db is not None:
        data["store"] = {"path": str(db)}
    return parse_config(data, "bench-console-load")


class MeasuredDesk(ThreadDesk):
    """The session's desk, timing when each command is applied."""

    def __init__(self, runner: SessionThread) -> None:
        super().__init__(runner)
        self.applied: dict[str, float] = {}

    def command(self, command: str, args: dict[str, Any], reason: str, source: str) -> tuple[bool, str]:
        result = super().command(command, args, reason, source)
        self.applied[command] = time.perf_counter()
        return result


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE / 2**20


def samples() -> array[float]:
    """A growing series of floats stored flat (8 bytes each): as a list of float objects, the bench's own figures
    (over 200 a second) grew the process by about 0.4 MB a minute, which the RSS figure would count as the app's."""
    return array("d")


def pct(values: Sequence[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def loop_lag(lags: array[float], stop: threading.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + LAG_TICK_S
        await asyncio.sleep(LAG_TICK_S)
        lags.append(max(0.0, loop.time() - due))


async def flow_rate(session: PaperSession, counts: list[tuple[float, int, int]], stop: threading.Event) -> None:
    """Once a second: order events so far (orders placed, each ACCEPTED, and canceled), and lines of the engine's log
    so far (order flow and engine lines, numbered in one sequence: what the console's event log receives)."""
    engine = session.engine
    churn = engine.strategies["churn"]
    assert isinstance(churn, OrderChurn)
    while not stop.is_set():
        placed = len(engine.orders) + engine.forgotten.orders
        counts.append((time.perf_counter(), placed + churn.canceled, engine.log_seq))
        await asyncio.sleep(1.0)


def collections(pauses: list[float]) -> None:
    """Time each full (generation 2) garbage collection: a pause of the whole loop."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(callback)


@dataclass
class Figures:
    lags: array[float] = field(default_factory=samples)                 # s, each oversleep on the session's loop
    console_lags: array[float] = field(default_factory=samples)         # s, the same on the console's loop
    flow: list[tuple[float, int, int]] = field(default_factory=list)    # (when, order events, log lines so far)
    # (s in, RSS MB, orders, decisions, MB the bench's own series take)
    memory: list[tuple[float, float, int, int, float]] = field(default_factory=list)
    gc_ms: list[float] = field(default_factory=list)
    keys_ms: list[float] = field(default_factory=list)
    presses: list[float] = field(default_factory=list)                  # when each h was pressed (perf_counter)
    refresh_ms: array[float] = field(default_factory=samples)
    refreshes: Sequence[float] = field(default_factory=samples)         # when each timed panel refresh began
    seconds: float = 0.0

    def own_mb(self) -> float:
        """What the bench's own growing series take (RSS counts them; the app's memory is RSS less this): the
        loop-lag probes alone add 200 samples a second, about 0.1 MB a minute."""
        flat = sum(sys.getsizeof(series) for series in (self.lags, self.console_lags, self.refresh_ms,
                                                           self.refreshes))
        counts = sys.getsizeof(self.flow) + sum(sys.getsizeof(row) + sum(map(sys.getsizeof, row)) for row in self.flow)
        return (flat + counts) / 2**20


async def measure(session: PaperSession, seconds: float, figures: Figures, pilot: Pilot | None,
                  desk: MeasuredDesk | None) -> None:
    """Watch the running session for seconds; with a console (pilot), press h and r every KEY_EVERY_S."""
    stop = threading.Event()
    watchers = [asyncio.create_task(flow_rate(session, figures.flow, stop))]
    if desk is None:
        watchers.append(asyncio.create_task(loop_lag(figures.lags, stop)))
    else:
        watchers += [desk.runner.submit(loop_lag(figures.lags, stop)),
                     asyncio.create_task(loop_lag(figures.console_lags, stop))]
    started = time.perf_counter()
    next_key, next_memory = started + KEY_EVERY_S, started
    seen = {"lags": 0, "console_lags": 0, "gc_ms": 0}  # how many of each were in by the last progress line
    while (now := time.perf_counter()) - started < seconds:
        if now >= next_memory:
            engine = session.engine
            figures.memory.append((now - started, rss_mb(), len(engine.orders), len(engine.decisions),
                                   figures.own_mb()))
            # the last 10 s, so a figure that drifts over the run shows where
            recent = {name: getattr(figures, name)[count:] for name, count in seen.items()}
            seen = {name: len(getattr(figures, name)) for name in seen}
            lags = "  ".join(f"{label} lag p99 {pct(recent[name], 99) * 1000:5.1f} ms" for name, label in
                             (("lags", "session"), ("console_lags", "console")) if recent[name])
            unsaved = f"  rows not yet saved {session.writer.backlog:,}" if session.writer is not None else ""
            print(f"{now - started:6.0f} s  RSS {figures.memory[-1][1]:7.1f} MB  orders {len(engine.orders):>8,}  "
                  f"decisions {len(engine.decisions):>8,}  {lags}  full GCs {len(recent['gc_ms'])}{unsaved}",
                  flush=True)
            next_memory += MEMORY_EVERY_S
        if pilot is not None and desk is not None and now >= next_key:
            pressed = time.perf_counter()
            figures.presses.append(pressed)
            await pilot.press("h")
            figures.keys_ms.append((desk.applied.get("halt", 0.0) - pressed) * 1000)
            assert session.engine.guard.states.state("portfolio").value == "HALTED", "h did not halt"
            await pilot.press("r")
            next_key += KEY_EVERY_S
        await asyncio.sleep(0.05)
    figures.seconds = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*watchers)
    if desk is not None:
        figures.refreshes = [t for t in figures.refreshes if t >= started]


async def run(seconds: float, symbols: int, tick_ms: float, refresh_hz: float | None, db: Path | None,
              console: bool) -> None:
    session = PaperSession(load_config(symbols, tick_ms, db), db_path=db)
    figures = Figures()
    collections(figures.gc_ms)
    asks_hz = None
    if console:
        runner = SessionThread(session)
        await runner.open()
        trading = asyncio.ensure_future(runner.run())
        desk = MeasuredDesk(runner)
        app = PaperdeskApp(desk, session.config)
        if refresh_hz is not None:
            app.REFRESH_SECONDS = 1.0 / refresh_hz
        asks_hz = 1.0 / app.REFRESH_SECONDS
        refresh_view, delivered = app.refresh_view, app._delivered
        refreshes = samples()
        answering = [False]  # a refresh made as a command's answer is drawn, not on the timer

        def timed_refresh() -> None:
            started = time.perf_counter()
            refresh_view()
            figures.refresh_ms.append((time.perf_counter() - started) * 1000)
            if not answering[0]:
                refreshes.append(started)

        def answered(what: str, ok: bool, result: str) -> None:
            answering[0] = True
            try:
                delivered(what, ok, result)
            finally:
                answering[0] = False

        app.refresh_view = timed_refresh  # type: ignore[method-assign]
        app._delivered = answered  # type: ignore[method-assign]
        figures.refreshes = refreshes
        async with app.run_test(headless=True, size=(160, 45)) as pilot:
            await measure(session, seconds, figures, pilot, desk)
        runner.stop("benchmark over")
    else:
        await session.open()
        trading = asyncio.ensure_future(session.run())
        await measure(session, seconds, figures, None, None)
        session.stop("benchmark over")
    await trading
    report(figures, asks_hz)


def unhalted_rate(flow: Sequence[tuple[float, int, int]], presses: Sequence[float]) -> float:
    """Order events a second over the one-second counts no halt touched: none pressed within the count or the
    churn's cycle before it (an order denied while halted leaves the next action nothing to cancel)."""
    events = seconds = 0.0
    for (start, before, _), (end, after, _) in zip(flow, flow[1:], strict=False):
        if not any(start - 2 * ACT_EVERY_NS / 1e9 <= pressed <= end for pressed in presses):
            events += after - before
            seconds += end - start
    return events / seconds if seconds else float("nan")


def report(f: Figures, asks_hz: float | None) -> None:
    span = f.flow[-1][0] - f.flow[0][0]
    events_per_s = (f.flow[-1][1] - f.flow[0][1]) / span
    lines_per_s = (f.flow[-1][2] - f.flow[0][2]) / span
    lag_ms = [lag * 1000 for lag in f.lags]
    half = [m for m in f.memory if m[0] >= f.memory[-1][0] / 2]
    minutes = max(1e-9, (half[-1][0] - half[0][0]) / 60)
    slope = (half[-1][1] - half[0][1]) / minutes
    app_slope = slope - (half[-1][4] - half[0][4]) / minutes
    rows = [("order events / s (placed, canceled)", f"{events_per_s:,.0f}", "500")]
    if f.presses:
        rows.append(("  in the seconds no halt touched", f"{unhalted_rate(f.flow, f.presses):,.0f}", "500"))
    rows.append(("engine log lines / s (the console's event log)", f"{lines_per_s:,.0f}", ""))
    refresh_hz = key_p50 = key_max = float("nan")
    if asks_hz is not None:
        refresh_hz = (len(f.refreshes) - 1) / (f.refreshes[-1] - f.refreshes[0])
        gaps = [b - a for a, b in zip(f.refreshes, f.refreshes[1:], strict=False)]
        key_p50, key_max = pct(f.keys_ms, 50), max(f.keys_ms)
        rows += [
            (f"panel refresh Hz (the console asks {asks_hz:g})", f"{refresh_hz:.2f}", ">= 10"),
            ("longest gap between refreshes ms", f"{max(gaps) * 1000:.0f}", ""),
            ("one refresh ms p50 / p99 / max",
             f"{pct(f.refresh_ms, 50):.1f} / {pct(f.refresh_ms, 99):.1f} / {max(f.refresh_ms):.1f}", ""),
            (f"key h to halt applied ms p50 / max ({len(f.keys_ms)} presses)", f"{key_p50:.1f} / {key_max:.1f}",
             "< 50")]
    rows.append(("session's loop lag ms p50 / p99 / max",
                 f"{pct(lag_ms, 50):.2f} / {pct(lag_ms, 99):.2f} / {max(lag_ms):.1f}", "p99 < 5"))
    if f.console_lags:
        console_ms = [lag * 1000 for lag in f.console_lags]
        rows.append(("console's loop lag ms p50 / p99 / max",
                     f"{pct(console_ms, 50):.2f} / {pct(console_ms, 99):.2f} / {max(console_ms):.1f}", ""))
    rows += [
        ("full garbage collections: count / longest ms", f"{len(f.gc_ms)} / {max(f.gc_ms, default=0):.0f}", ""),
        ("RSS MB first / last / max",
         f"{f.memory[0][1]:.0f} / {f.memory[-1][1]:.0f} / {max(m[1] for m in f.memory):.0f}", "flat"),
        ("RSS MB per minute, second half", f"{slope:+.2f}", "~0"),
        ("  less the bench's own samples", f"{app_slope:+.2f}", "~0"),
        ("engine orders / decisions kept", f"{f.memory[-1][2]:,} / {f.memory[-1][3]:,}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'figure':<{width}}  {'measured':>24}  goal")
    for name, value, goal in rows:
        print(f"{name:<{width}}  {value:>24}  {goal}")
    print(f"seconds={f.seconds:.0f} order_events_per_s={events_per_s:.0f} refresh_hz={refresh_hz:.2f} "
          f"key_ms_p50={key_p50:.1f} key_ms_max={key_max:.1f} lag_ms_p99={pct(lag_ms, 99):.2f} "
          f"rss_mb_first={f.memory[0][1]:.0f} rss_mb_last={f.memory[-1][1]:.0f} rss_mb_per_min={slope:+.2f} "
          f"app_mb_per_min={app_slope:+.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="how long to measure (default 600)")
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--tick-ms", type=float, default=50.0, help="wall ms between market updates (default 50)")
    ap.add_argument("--refresh-hz", type=float, help="set the console's panel refresh rate (default: the app's)")
    ap.add_argument("--no-db", action="store_true", help="a session that saves nothing")
    ap.add_argument("--no-console", action="store_true", help="the session alone: what the engine sustains")
    args = ap.parse_args()
    if args.seconds < 2 * MEMORY_EVERY_S:
        raise SystemExit(f"--seconds {args.seconds:g}: measure for at least {2 * MEMORY_EVERY_S:g} s")
    with tempfile.TemporaryDirectory() as tmp:
        db = None if args.no_db else Path(tmp) / "desk.sqlite"
        asyncio.run(run(args.seconds, args.symbols, args.tick_ms, args.refresh_hz, db, not args.no_console))


if __name__ == "__main__":
    main()
