"""The store's single writer: rows per second it sustains, and the event loop's worst lag meanwhile.

Usage: bench/store_writer.py [--seconds S] [--rate R ...]
Rows are the real row builders' output for real market events, decisions, orders and fills
(mostly market data, as in a paper session), built before each phase so that the loop's lag is
the writer's doing, not the row building's. Every commit chains its rows in the audit chain, as a
session's do (engine/store/audit.py). A probe task sleeps 1 ms at a time on the same loop
and records how late it wakes: that lateness is what a market event would wait.

Phase 1 ("max"): the producer appends as fast as back-pressure lets it; committed rows/s is the
writer's ceiling. Phase 2: the producer appends at each --rate (rows/s), paced every millisecond.
Last lines: rate=... rows_per_s=... loop_lag_max_ms=... loop_lag_p99_ms=...
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosqlite  # noqa: E402

from engine.clock import SimClock  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.model.decision import Decision, Signal  # noqa: E402
from engine.model.fill import Fill, FillBasis, Liquidity  # noqa: E402
from engine.model.order import Order, OrderSide, OrderStatus  # noqa: E402
from engine.store.database import WriterLock  # noqa: E402
from engine.store.journal import StoreJournal  # noqa: E402
from engine.store.sessions import open_session  # noqa: E402
from engine.store.writer import StoreWriter  # noqa: E402
from engine.venues import build_market  # noqa: E402


class Producer:
    """Feeds the journal the mix a paper session produces: per step, market data, then a decision,
    sometimes an order with its transitions and a fill (which also appends an audit entry)."""

    def __init__(self, journal: StoreJournal, clock: SimClock) -> None:
        self.journal = journal
        self.market = build_market(load_config(Path(__file__).resolve().parent.parent / "config.toml"))
        self.clock = clock
        self.ts = clock.now_ns()
        self.orders = 0

    def step(self) -> None:
        self.ts += 25_000_000
        self.clock.advance_to(self.ts)
        journal = self.journal
        for event in self.market.step(self.ts, 0.025):
            journal.market(event)
        journal.decision(Decision(self.ts, "bench", "BTC/USDT", Signal.HOLD, 0.0, "bench", {"sma": 1.0}), None)
        if self.market.steps % 4 == 0:
            self.orders += 1
            order = Order(f"B{self.orders:08d}", "bench", "BTC/USDT", OrderSide.BUY, 0.01, created_ns=self.ts)
            for status in (OrderStatus.SUBMITTED, OrderStatus.ACCEPTED):
                order.transition(status)
                journal.order(order)
            journal.fill(Fill(f"{order.client_id}-F1", order.client_id, "bench", "BTC/USDT", OrderSide.BUY, 0.01,
                              60000.0, 0.3, Liquidity.TAKER, self.ts, FillBasis.BOOK, 0.5, 0, 60000.0, 0.5))
            order.apply_fill(0.01, 60000.0)
            journal.order(order)
        journal.venue_state(self.ts, self.market.state())


async def lag_probe(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        samples.append(max(0.0, time.perf_counter() - start - 0.001))


Batch = tuple[dict, list, int]


def build_pool(producer: Producer, rows: float) -> list[Batch]:
    """Per market step, the rows it journals, built ahead of time."""
    pool: list[Batch] = []
    built = 0
    while built < rows:
        producer.step()
        batch = producer.journal.take()
        pool.append(batch)
        built += batch[2]
    return pool


def append(journal: StoreJournal, batch: Batch) -> int:
    pending, audit, count = batch
    for op, rows in pending.items():
        journal.pending[op].extend(rows)
    journal.audit.extend(audit)
    journal.count += count
    return count


async def phase(writer: StoreWriter, pool: list[Batch], seconds: float, rate: float | None) -> tuple[float, list]:
    journal = writer.journal
    pool.reverse()
    samples: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(lag_probe(samples, stop))
    committed0 = writer.rows_committed
    started = time.perf_counter()
    produced = 0
    while (now := time.perf_counter()) - started < seconds and pool:
        if rate is None:
            produced += append(journal, pool.pop())
            await writer.make_room()
            await asyncio.sleep(0)
        else:
            while pool and produced < rate * (now - started):
                produced += append(journal, pool.pop())
            await asyncio.sleep(0.001)
    await writer.flush()
    elapsed = time.perf_counter() - started
    stop.set()
    await probe
    return (writer.rows_committed - committed0) / elapsed, samples


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rate", type=float, action="append", help="rows/s to pace at (default 20000 and 40000)")
    args = ap.parse_args()
    rates = args.rate or [20_000.0, 40_000.0]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite"
        config = load_config(Path(__file__).resolve().parent.parent / "config.toml")
        clock = SimClock(time.time_ns())
        lock = WriterLock(db)
        opened = open_session(db, lock, config, False, clock.now_ns())
        journal = StoreJournal(opened.record.id, clock)
        conn = await aiosqlite.connect(db, isolation_level=None)
        await conn.execute("PRAGMA synchronous = FULL")
        writer = StoreWriter(conn, journal, opened.audit_head, flush_ms=100.0, max_backlog_rows=50_000)
        writer.start()
        producer = Producer(StoreJournal(opened.record.id, clock), clock)
        for label, rate in [("max", None), *[(f"{r:.0f}", r) for r in rates]]:
            pool = build_pool(producer, (rate or 80_000) * args.seconds)
            rows_per_s, lags = await phase(writer, pool, args.seconds, rate)
            lags.sort()
            p99 = lags[int(len(lags) * 0.99)] if lags else 0.0
            print(f"rate={label} rows_per_s={rows_per_s:.0f} loop_lag_max_ms={lags[-1] * 1000:.2f} "
                  f"loop_lag_p99_ms={p99 * 1000:.2f} batches={writer.batches} max_commit_ms={writer.max_commit_ms:.1f} "
                  f"backpressure_waits={writer.waits}", flush=True)
        await writer.close()
        lock.release()


if __name__ == "__main__":
    asyncio.run(main())
