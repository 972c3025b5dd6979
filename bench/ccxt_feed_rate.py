"""Sustained market-data rate of a ccxt paper session: the highest book-update rate across 10 symbols that the
session keeps up with while its event loop's lag stays low.

Usage: bench/ccxt_feed_rate.py [--seconds S] [--symbols N] [--rates R,R,...] [--trade-ratio X] [--max-lag-ms M]

The loopback Binance fake runs in a child process (as in bench/ccxt_latency.py, whose fake and hooks this reuses)
and publishes book updates at each rate of the ramp for --seconds, round robin over the symbols, plus trades at
--trade-ratio of that rate. The session is the real one, with persistence on (SQLite in a temp dir), and an
sma_crossover strategy on 1 s bars per symbol. A probe task on the session's loop sleeps 1 ms at a time and records
how late it wakes (the loop lag: what a market event would wait).

A rate is kept up with when, over its step: the loop lag p99 < --max-lag-ms (5); the fake sent what was asked (at
least 95% of the rate: a session that stops reading makes the fake's socket writes wait); ccxt handled every message
the fake sent; and there is no growing backlog: the median delay from the fake's send to ccxt taking the message,
over the step's last quarter, is under 10 ms (a session that falls behind sees that delay grow by the second).
The ramp goes on past rates that fail on the lag alone, and stops after two rates in a row with a growing backlog
(or a short or unhandled send), so the last line also gives the throughput ceiling whatever the lag.

One line per rate: feed_rate books_per_s=... ok=... keeps_up=... loop_lag_p99_ms=...; then
feed_rate_max books_per_s=... (lag and backlog) and feed_rate_keeps_up_max books_per_s=... (backlog only).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ccxt_latency import BASES, PROBE, FakeProcess, pct, session_config, symbol_names  # noqa: E402

from engine.config import parse_config  # noqa: E402
from engine.session import PaperSession  # noqa: E402

perf = time.perf_counter_ns
BACKLOG_MS = 10.0
SENT_SHARE = 0.95


class LagProbe:
    """Sleeps 1 ms at a time on the session's loop: (when it woke, how late) per wake; the writer's backlog too."""

    def __init__(self, session: PaperSession) -> None:
        self.session = session
        self.lags: list[tuple[int, int]] = []
        self.backlog: list[tuple[int, int]] = []

    async def run(self) -> None:
        writer = self.session.writer
        while True:
            before = perf()
            await asyncio.sleep(0.001)
            now = perf()
            self.lags.append((now, now - before - 1_000_000))
            if writer is not None:
                self.backlog.append((now, writer.backlog))

    def window(self, start: int, end: int) -> tuple[list[float], int]:
        lags = [lag / 1e6 for t, lag in self.lags if start <= t < end]
        backlog = max((b for t, b in self.backlog if start <= t < end), default=0)
        return lags, backlog


def child_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used, from /proc (None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


async def step(fake: FakeProcess, lag: LagProbe, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    PROBE.ccxt_handled.clear()
    depth_before, books_before = PROBE.depth_msgs, PROBE.books_delivered
    cpu, child_cpu, start = time.process_time(), child_cpu_s(fake.proc.pid), perf()
    sent = await fake.publish(rate, rate * args.trade_ratio, args.seconds)
    end = perf()
    cpu_share = (time.process_time() - cpu) / ((end - start) / 1e9)
    after_child = child_cpu_s(fake.proc.pid)
    child_share = None if child_cpu is None or after_child is None else \
        (after_child - child_cpu) / ((end - start) / 1e9)
    # let the session catch up with what is on its way, then see how long that took
    wanted = sent["books"] + sent["trades"]
    deadline = time.monotonic() + 10.0
    while len(PROBE.ccxt_handled) < wanted and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    handled = list(PROBE.ccxt_handled)
    lags, backlog = lag.window(start, end)
    delays = [(sent_ns, (t_in - sent_ns) / 1e6) for sent_ns, t_in, _ in handled]
    last_quarter = [d for s, d in delays if s >= end - (end - start) // 4]
    first_quarter = [d for s, d in delays if s < start + (end - start) // 4]
    last_ms = max(delays)[1] if delays else float("nan")  # the step's last message: the backlog left at its end
    gcs = [(e - s) / 1e6 for s, e, _ in PROBE.gc_log if start <= s < end]
    books_per_s = sent["books"] / sent["elapsed_s"]
    result = {
        "rate": rate, "books_per_s": books_per_s, "sent_books": sent["books"], "sent_trades": sent["trades"],
        "handled": len(handled), "lag_p50": pct(lags, 50), "lag_p99": pct(lags, 99), "lag_max": max(lags, default=0),
        "delay_first": pct(first_quarter, 50), "delay_last": pct(last_quarter, 50),
        "delay_p99": pct([d for _, d in delays], 99), "last_ms": last_ms,
        "gc_max": max(gcs, default=0.0),
        "books_to_engine": PROBE.books_delivered - books_before, "depth_handled": PROBE.depth_msgs - depth_before,
        "writer_backlog_max": backlog, "cpu": cpu_share, "fake_cpu": child_share,
    }
    result["keeps_up"] = (books_per_s >= SENT_SHARE * rate and len(handled) >= wanted
                          and result["delay_last"] < BACKLOG_MS)
    result["ok"] = result["keeps_up"] and result["lag_p99"] < args.max_lag_ms
    return result


def describe(r: dict[str, Any]) -> str:
    coalesced = 1 - r["books_to_engine"] / r["depth_handled"] if r["depth_handled"] else 0.0
    fake_cpu = "n/a" if r["fake_cpu"] is None else f"{r['fake_cpu'] * 100:.0f}%"
    return (f"feed_rate books_per_s={r['rate']:g} ok={'yes' if r['ok'] else 'no'} "
            f"keeps_up={'yes' if r['keeps_up'] else 'no'} "
            f"loop_lag_p50_ms={r['lag_p50']:.2f} loop_lag_p99_ms={r['lag_p99']:.2f} loop_lag_max_ms={r['lag_max']:.1f} "
            f"sent_books_per_s={r['books_per_s']:.0f} trades={r['sent_trades']} "
            f"handled={r['handled']}/{r['sent_books'] + r['sent_trades']} "
            f"send_to_ccxt_ms p50_first_quarter={r['delay_first']:.2f} p50_last_quarter={r['delay_last']:.2f} "
            f"p99={r['delay_p99']:.2f} last_msg={r['last_ms']:.2f} gc_max_ms={r['gc_max']:.1f} "
            f"books_to_engine={r['books_to_engine']} ({coalesced * 100:.0f}% coalesced by ccxt) "
            f"writer_backlog_max={r['writer_backlog_max']} cpu={r['cpu'] * 100:.0f}% fake_cpu={fake_cpu}")


async def run(args: argparse.Namespace) -> None:
    fake = await FakeProcess.start(args.symbols)
    symbols = symbol_names(args.symbols)
    strategies = [{"name": f"sma_{s.split('/')[0].lower()}", "kind": "sma_crossover", "symbols": [s],
                   "timeframe": "1s", "params": {"fast": 2, "slow": 3, "size": 0.01}} for s in symbols]
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="ccxt-feed-rate-") as tmp:
            session = PaperSession(parse_config(session_config(fake.url, symbols, strategies)),
                                   db_path=Path(tmp) / "desk.sqlite")
            exchange = session.feed.exchange  # type: ignore[attr-defined]
            PROBE.hook_exchange(exchange)
            await session.open()
            PROBE.hook_feed(session.feed, {s: exchange.market(s)["id"] for s in symbols})
            PROBE.hook_session(session)
            PROBE.keep_handled = True
            gc.callbacks.append(PROBE.gc_callback)
            running = asyncio.create_task(session.run())
            lag = LagProbe(session)
            probe = asyncio.create_task(lag.run())
            await fake.publish(args.rates[0], args.rates[0] * args.trade_ratio, 2.0)  # warm up
            PROBE.recording = True
            failures = 0
            for rate in args.rates:
                await asyncio.sleep(1.0)  # the writer and the loop settle between rates
                result = await step(fake, lag, rate, args)
                results.append(result)
                print(describe(result), flush=True)
                failures = 0 if result["keeps_up"] else failures + 1
                if failures >= 2:
                    break
            probe.cancel()
            session.stop("bench done")
            await running
            await asyncio.gather(probe, return_exceptions=True)
    finally:
        await fake.close()
    kept = [r for r in results if r["ok"]]
    if kept:
        best = max(kept, key=lambda r: r["rate"])
        below = [f"{r['rate']:g}" for r in results if r["rate"] < best["rate"] and not r["ok"]]
        print(f"feed_rate_max books_per_s={best['rate']:g} symbols={args.symbols} "
              f"trades_per_s={best['rate'] * args.trade_ratio:g} loop_lag_p99_ms={best['lag_p99']:.2f} "
              f"(highest rate with loop lag p99 < {args.max_lag_ms:g} ms and no growing backlog"
              f"{'; failed below it: ' + ', '.join(below) if below else ''})")
    else:
        print(f"feed_rate_max books_per_s=none symbols={args.symbols} (no rate of {args.rates} was kept up with)")
    fast = [r for r in results if r["keeps_up"]]
    if fast:
        top = max(fast, key=lambda r: r["rate"])
        print(f"feed_rate_keeps_up_max books_per_s={top['rate']:g} loop_lag_p99_ms={top['lag_p99']:.2f} "
              f"cpu={top['cpu'] * 100:.0f}% "
              f"(highest rate handled with no growing backlog, whatever the loop lag"
              f"{'; the ramp ended before one was not' if len(fast) == len(results) else ''})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="publishing time per rate")
    parser.add_argument("--symbols", type=int, default=10, help=f"symbols (at most {len(BASES)})")
    parser.add_argument("--rates", default="250,500,1000,1500,2000,3000,4000,6000,8000",
                        help="book updates per second across all symbols, in ramp order")
    parser.add_argument("--trade-ratio", type=float, default=0.1, help="trades per book update")
    parser.add_argument("--max-lag-ms", type=float, default=5.0, help="loop lag p99 a kept-up rate stays under")
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    if not 1 <= args.symbols <= len(BASES):
        parser.error(f"--symbols must be 1..{len(BASES)}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
