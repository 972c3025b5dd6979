"""Tick-to-decision latency of a ccxt paper session: a websocket message in, the strategy's decision and the order
leaving for the broker out, with persistence on (a real SQLite file in a temp dir).

Usage: bench/ccxt_latency.py [--seconds S] [--warmup S] [--symbols N] [--books-per-s R] [--trades-per-s R]

The loopback Binance fake (tests/fakes/binance.py) runs in a child process, so its own work is not on the session's
event loop; it publishes book updates and trades at a steady rate, and stamps each message with
time.perf_counter_ns() just before sending it (CLOCK_MONOTONIC: one clock for both processes on Linux). The session
is the real one (PaperSession, [venue] kind = "ccxt" pointed at the fake by url, the real ccxt.pro client); the bench
only wraps objects from the outside to read the clock at each stage of a message's way:

  sent      the fake sends it (other process, same clock)
  arrive    the bytes are read off the socket in this process (the aiohttp protocol's data_received)
  ccxt_in   ccxt's Client.handle_message starts (aiohttp has framed and inflated it: permessage-deflate is on)
  decoded   ccxt has decoded the JSON (orjson) and calls the exchange's handle_message
  ccxt_out  ccxt is done: the book delta applied or the trade parsed and cached, the watcher's future resolved
  feed      CcxtFeed._on_book/_on_trade runs (the feed's watcher task woke up): our receive stamp per event
  batch     FeedBatch.received_ns: the session's receive() handed the batch over (converted to this clock)
  process   Engine.process starts on the event
  decide    the strategy's hook runs: it decides (an order on every event, alternating buy and sell at market)
  submit    the order leaves: PaperBroker.submit is called (the order has passed risk and been journaled)

Trades reach the strategy through the engine's own on_tick. The engine has no book hook for strategies, so for books
the bench wraps the engine's on_book to call the strategy's on_book after the engine's own handling (the same place
on_tick is called for trades); the book path is therefore the engine's path plus that one call.

Summary lines: tick_to_decision/tick_to_order per path (trade, book), measured from arrival (in the process), from
FeedBatch.received_ns (what the engine's own stamp sees) and from the fake's send; then the median and p99 of
each stage. The fake's book and trade streams: one depthUpdate changing a level on each side, one trade per print.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pydantic import PositiveFloat  # noqa: E402

from engine.config import parse_config  # noqa: E402
from engine.model.market import BookSnapshot, TradeTick  # noqa: E402
from engine.session import PaperSession  # noqa: E402
from engine.strategy.base import Strategy, StrategyParams  # noqa: E402
from engine.strategy.registry import register, strategy_kinds  # noqa: E402

perf = time.perf_counter_ns
BASES = ("BTC", "ETH", "SOL", "XRP", "ADA", "DOGE", "BNB", "LTC", "DOT", "AVAX", "LINK", "TRX", "ATOM", "NEAR",
         "UNI", "ETC")
TICK = 0.01
LEVELS = 10


def base_price(index: int) -> float:
    return 1000.0 + 100.0 * index


# ---------------------------------------------------------------- the fake, in a child process

async def serve_fake(symbols: int) -> None:
    """The child: the fake on 127.0.0.1, commands on stdin and answers on stdout, one JSON object a line."""
    from aiohttp import web

    from tests.fakes.binance import FakeBinance
    from tests.fakes.binance_matching import SymbolSpec

    class StampedFake(FakeBinance):
        """Every market event leaves with "_t": this process's perf_counter_ns just before it is sent."""

        async def _accept(self, request: web.Request) -> Any:
            conn = await super()._accept(request)
            send_json = conn.ws.send_json

            async def stamped(data: Any, *args: Any, **kwargs: Any) -> None:
                if isinstance(data, dict) and "e" in data:
                    t = perf()
                    await send_json({**data, "_t": t}, *args, **kwargs)
                    self.send_ns.append(perf() - t)  # JSON, deflate and the socket write, in the fake
                else:
                    await send_json(data, *args, **kwargs)

            conn.ws.send_json = stamped  # type: ignore[method-assign]
            return conn

        send_ns: list[int] = []

    specs = [SymbolSpec(BASES[i], "USDT") for i in range(symbols)]
    rng = random.Random(7)
    async with StampedFake(specs, {"USDT": "100000000"}) as fake:
        for i, spec in enumerate(specs):
            mid = base_price(i)
            await fake.set_book(spec.symbol, [(f"{mid - TICK * (k + 1):.2f}", "5") for k in range(LEVELS)],
                                [(f"{mid + TICK * (k + 1):.2f}", "5") for k in range(LEVELS)])
        print(json.dumps({"url": fake.http_url}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            command = json.loads(line)
            if command["cmd"] == "quit":
                break
            fake.send_ns = []
            result = await publish(fake, specs, command["books_per_s"], command["trades_per_s"],
                                   command["seconds"], rng)
            result["send_p50_us"] = pct(fake.send_ns, 50) / 1e3
            result["send_p99_us"] = pct(fake.send_ns, 99) / 1e3
            print(json.dumps(result), flush=True)


async def publish(fake: Any, specs: list[Any], books_per_s: float, trades_per_s: float, seconds: float,
                  rng: random.Random) -> dict[str, Any]:
    """Book updates and trades on a steady schedule (round robin over the symbols); a send that falls behind its
    time goes out at once. Returns what went out and how far behind the schedule the fake fell."""
    n_books, n_trades = int(books_per_s * seconds), int(trades_per_s * seconds)
    sent_books = sent_trades = 0
    behind_max = 0.0
    t0 = perf()
    while sent_books < n_books or sent_trades < n_trades:
        due_book = sent_books / books_per_s if sent_books < n_books else float("inf")
        due_trade = (sent_trades + 0.5) / trades_per_s if sent_trades < n_trades else float("inf")
        due = min(due_book, due_trade)
        now = (perf() - t0) / 1e9
        if due > now:
            await asyncio.sleep(due - now)
        else:
            behind_max = max(behind_max, now - due)
        if due_book <= due_trade:
            i = sent_books % len(specs)
            mid = base_price(i)
            level = rng.randrange(5) + 1
            await fake.update_book(specs[i].symbol, bids=[(f"{mid - TICK * level:.2f}", str(rng.randint(1, 9)))],
                                   asks=[(f"{mid + TICK * level:.2f}", str(rng.randint(1, 9)))])
            sent_books += 1
        else:
            i = sent_trades % len(specs)
            mid = base_price(i)
            buy = sent_trades % 2 == 0
            await fake.trade(specs[i].symbol, f"{mid + TICK if buy else mid - TICK:.2f}", "0.01",
                             buyer_maker=not buy)
            sent_trades += 1
    elapsed = (perf() - t0) / 1e9
    return {"books": sent_books, "trades": sent_trades, "elapsed_s": elapsed, "behind_max_ms": behind_max * 1e3}


class FakeProcess:
    """The parent's handle on the child running serve_fake."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc, self.url = proc, url

    @classmethod
    async def start(cls, symbols: int) -> FakeProcess:
        proc = await asyncio.create_subprocess_exec(sys.executable, __file__, "--serve-fake", str(symbols), cwd=REPO,
                                                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise SystemExit("the fake exchange did not start")
        return cls(proc, json.loads(line)["url"])

    async def publish(self, books_per_s: float, trades_per_s: float, seconds: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": "publish", "books_per_s": books_per_s,
                                          "trades_per_s": trades_per_s, "seconds": seconds}).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise SystemExit("the fake exchange stopped")
        result: dict[str, Any] = json.loads(line)
        return result

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(ConnectionError):
                self.proc.stdin.write(b'{"cmd": "quit"}\n')
                await self.proc.stdin.drain()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


# ---------------------------------------------------------------- the session and its strategy

class EveryEventParams(StrategyParams):
    size: PositiveFloat = 0.01


class EveryEvent(Strategy[EveryEventParams]):
    """Decides on every print (on_tick) and every book (on_book, called by the bench's hook): a market order,
    buying and selling in turn so that the position stays flat."""

    kind = "bench_every_event"
    Params = EveryEventParams

    def on_start(self) -> None:
        self.buy_next = True

    def on_tick(self, tick: TradeTick) -> None:
        PROBE.decided()
        self._flip(tick.symbol, "print")

    def on_book(self, book: BookSnapshot) -> None:
        PROBE.decided()
        self._flip(book.symbol, "book")

    def _flip(self, symbol: str, reason: str) -> None:
        if self.buy_next:
            self.buy(symbol, self.params.size, reason=reason)
        else:
            self.sell(symbol, self.params.size, reason=reason)
        self.buy_next = not self.buy_next


if EveryEvent.kind not in strategy_kinds():
    register(EveryEvent)


def symbol_names(count: int) -> list[str]:
    return [f"{BASES[i]}/USDT" for i in range(count)]


def session_config(url: str, symbols: list[str], strategies: list[dict[str, Any]]) -> dict[str, Any]:
    return {"session": {"starting_cash": 10_000_000.0, "equity_mark_seconds": 1.0, "status_seconds": 5.0},
            "venue": {"kind": "ccxt", "exchange": "binance", "url": url, "timeout_ms": 10000.0, "latency_ms": 0.0},
            "validation": {"live_interval_seconds": None},
            # the bench strategy pays the spread on every round trip: breakers on its losses would stop it
            "breakers": {"consecutive_losses": None, "daily_loss": None, "drawdown": None},
            # it also orders on every event: over the default throttle (100 orders/s) the rest would be denied
            "risk": {"max_submit_rate": 10_000.0},
            "instruments": [{"symbol": s} for s in symbols],
            "strategies": strategies}


# ---------------------------------------------------------------- the probe

STAGES = ("sent", "arrive", "ccxt_in", "decoded", "ccxt_out", "feed", "batch", "process", "decide", "submit")


class Probe:
    """Clock readings along each message's way; hooks are installed on the session's objects from the outside."""

    def __init__(self) -> None:
        self.recording = False
        self.samples: dict[str, list[tuple[int, ...]]] = {"trade": [], "book": []}
        self.depth_msgs = self.trade_msgs = self.other_msgs = 0  # handled by ccxt while recording
        self.books_delivered = self.trades_delivered = 0  # events the feed emitted with a message behind them
        self.ccxt_handled: list[tuple[int, int, int]] = []  # (sent, ccxt_in, ccxt_out) per market message
        self.keep_handled = False
        self._books: dict[str, tuple[int, int, int, int, int]] = {}  # exchange id -> latest depth message's stamps
        self._trades: dict[tuple[str, str], tuple[int, int, int, int, int]] = {}
        self._by_event: dict[int, tuple[tuple[int, int, int, int, int], int]] = {}
        self._batch_ns = 0
        self._current: tuple[str, tuple[int, int, int, int, int], int, int, int] | None = None
        self._decide_ns = 0
        self._decoded_ns = 0
        self.books_coalesced = 0  # depth messages whose book was overtaken by the next one before the feed took it
        self.gc_pauses: list[int] = []
        self.gc_log: list[tuple[int, int, int]] = []  # (start, end, generation) of every collection
        self._gc_start = 0

    def gc_callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = perf()
            return
        end = perf()
        self.gc_log.append((self._gc_start, end, info["generation"]))
        if self.recording:
            self.gc_pauses.append(end - self._gc_start)

    # ---- ccxt: the client's socket and message handler

    def hook_exchange(self, exchange: Any) -> None:
        """Before any websocket client exists: each client made later is hooked, and calls the hooked handler."""
        handle = exchange.handle_message

        def decoded(client: Any, message: Any) -> Any:
            self._decoded_ns = perf()
            return handle(client, message)

        exchange.handle_message = decoded
        make_client = exchange.client
        hooked: set[str] = set()

        def client(url: str) -> Any:
            ws = make_client(url)
            if url not in hooked:
                hooked.add(url)
                self._hook_client(ws)
            return ws

        exchange.client = client

    def _hook_client(self, ws: Any) -> None:
        arrivals: deque[int] = deque()
        connected = ws.on_connected_callback

        def on_connected(client: Any) -> None:
            # the socket is open and nothing was subscribed yet: from here every frame goes through this hook
            protocol = client.connection._conn.protocol
            queue = protocol._payload
            data_received = protocol.data_received

            def stamped(data: bytes) -> None:
                t = perf()
                before = len(queue._buffer)
                data_received(data)
                for _ in range(len(queue._buffer) - before):
                    arrivals.append(t)

            protocol.data_received = stamped
            arrivals.clear()
            connected(client)

        ws.on_connected_callback = on_connected
        handle = ws.handle_message

        def handle_message(message: Any) -> None:
            t_in = perf()
            arrive = arrivals.popleft() if arrivals else 0
            self._decoded_ns = 0
            handle(message)
            t_out = perf()
            data = message.data
            if type(data) is not str:
                return
            mark = data.rfind('"_t": ')
            if mark < 0:
                if self.recording:
                    self.other_msgs += 1
                return
            stamps = (int(data[mark + 6:data.index("}", mark)]), arrive, t_in, self._decoded_ns, t_out)
            at = data.index('"s": "') + 6
            sid = data[at:data.index('"', at)]
            if data.startswith('{"e": "depthUpdate"'):
                if self.recording:
                    self.depth_msgs += 1
                    self.books_coalesced += sid in self._books
                self._books[sid] = stamps
            else:
                at = data.index('"t": ') + 5
                self._trades[(sid, data[at:data.index(",", at)])] = stamps
                if self.recording:
                    self.trade_msgs += 1
            if self.keep_handled:
                self.ccxt_handled.append((stamps[0], t_in, t_out))

        ws.handle_message = handle_message

    # ---- our feed: where each event is stamped

    def hook_feed(self, feed: Any, ids: dict[str, str]) -> None:
        on_book, on_trade = feed._on_book, feed._on_trade

        def book(symbol: str, snapshot: Any) -> None:
            t = perf()
            on_book(symbol, snapshot)
            stamps = self._books.pop(ids[symbol], None)
            if stamps is not None:
                self._by_event[id(feed._pending[-1])] = (stamps, t)
                if self.recording:
                    self.books_delivered += 1

        def trade(symbol: str, item: Any) -> None:
            t = perf()
            on_trade(symbol, item)
            stamps = self._trades.pop((ids[symbol], str(item.get("id"))), None)
            if stamps is not None:
                self._by_event[id(feed._pending[-1])] = (stamps, t)
                if self.recording:
                    self.trades_delivered += 1

        feed._on_book, feed._on_trade = book, trade

    # ---- the session, the engine and the broker

    def hook_session(self, session: PaperSession) -> None:
        clock = session.feed.clock  # type: ignore[attr-defined]  # the CcxtFeed's LiveClock stamps received_ns
        before = perf()
        now = clock.now_ns()
        offset = now - (before + perf()) // 2  # LiveClock is perf_counter_ns plus a constant at speed 1
        apply = session.apply_live

        async def apply_batch(batch: Any) -> None:
            self._batch_ns = batch.received_ns - offset
            await apply(batch)

        session.apply_live = apply_batch  # type: ignore[method-assign]
        engine = session.engine
        process = engine.process

        def process_event(event: Any) -> None:
            item = self._by_event.pop(id(event), None)
            if item is None:
                process(event)
                return
            self._current = ("book" if type(event) is BookSnapshot else "trade", item[0], item[1], self._batch_ns,
                             perf())
            self._decide_ns = 0
            try:
                process(event)
            finally:
                self._current = None

        engine.process = process_event  # type: ignore[method-assign]
        # the engine calls no strategy on books: the bench does, right after the engine's own book handling
        book_subs: dict[str, list[Any]] = {}
        for strategy in engine.strategies.values():
            if callable(getattr(strategy, "on_book", None)):
                for symbol in strategy.symbols:
                    book_subs.setdefault(symbol, []).append(strategy)
        on_book = engine.on_book

        def engine_on_book(book: BookSnapshot) -> None:
            on_book(book)
            for strategy in book_subs.get(book.symbol, ()):
                strategy._ts = book.ts
                strategy.on_book(book)

        engine.on_book = engine_on_book  # type: ignore[method-assign]
        broker = engine.broker
        submit = broker.submit

        def submit_order(order: Any) -> None:
            t = perf()
            submit(order)
            current = self._current
            if current is not None and self._decide_ns and self.recording:
                kind, stamps, feed_ns, batch_ns, process_ns = current
                self.samples[kind].append((*stamps, feed_ns, batch_ns, process_ns, self._decide_ns, t))
            self._decide_ns = 0

        broker.submit = submit_order  # type: ignore[method-assign]

    def decided(self) -> None:
        self._decide_ns = perf()


PROBE = Probe()


# ---------------------------------------------------------------- figures

def pct(values: list[float] | list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))]


def line(name: str, values_ns: list[int], **extra: Any) -> str:
    us = [v / 1e3 for v in values_ns]
    tail = "".join(f" {k}={v}" for k, v in extra.items())
    return (f"{name}{tail} p50_us={pct(us, 50):.1f} p99_us={pct(us, 99):.1f} "
            f"max_us={max(us) if us else float('nan'):.1f} n={len(us)}")


def between(samples: list[tuple[int, ...]], a: str, b: str) -> list[int]:
    i, j = STAGES.index(a), STAGES.index(b)
    return [s[j] - s[i] for s in samples if s[i] and s[j]]


def report(samples: dict[str, list[tuple[int, ...]]]) -> None:
    for kind in ("trade", "book"):
        got = samples[kind]
        print(line("tick_to_decision", between(got, "arrive", "decide"), path=kind, start="arrival"))
        print(line("tick_to_order", between(got, "arrive", "submit"), path=kind, start="arrival"))
        print(line("tick_to_decision", between(got, "batch", "decide"), path=kind, start="received_ns"))
        print(line("tick_to_order", between(got, "batch", "submit"), path=kind, start="received_ns"))
        print(line("tick_to_order", between(got, "sent", "submit"), path=kind, start="fake_send"))
    for kind in ("trade", "book"):
        got = samples[kind]
        parts = []
        for a, b in zip(STAGES, STAGES[1:], strict=False):
            us = [v / 1e3 for v in between(got, a, b)]
            parts.append(f"{a}->{b} {pct(us, 50):.1f}/{pct(us, 99):.1f}")
        print(f"stages path={kind} (p50/p99 us): " + ", ".join(parts))
    for kind in ("trade", "book"):
        got = samples[kind]
        total = between(got, "arrive", "submit")
        if not total:
            continue
        cut = pct(total, 99)
        slow = [s for s, t in zip(got, total, strict=True) if t >= cut]
        means = [sum(s[i + 1] - s[i] for s in slow) / len(slow) / 1e3 for i in range(1, len(STAGES) - 1)]
        print(f"slowest 1% path={kind} (n={len(slow)}, arrive->submit >= {cut / 1e3:.0f} us), mean us per stage: "
              + ", ".join(f"{a}->{b} {m:.0f}" for a, b, m in zip(STAGES[1:-1], STAGES[2:], means, strict=True)))


async def run(args: argparse.Namespace) -> None:
    fake = await FakeProcess.start(args.symbols)
    symbols = symbol_names(args.symbols)
    strategies = [{"name": f"every_{s.split('/')[0].lower()}", "kind": EveryEvent.kind, "symbols": [s],
                   "params": {"size": 0.01}} for s in symbols]
    try:
        with tempfile.TemporaryDirectory(prefix="ccxt-latency-") as tmp:
            db = Path(tmp) / "desk.sqlite"
            session = PaperSession(parse_config(session_config(fake.url, symbols, strategies)), db_path=db)
            exchange = session.feed.exchange  # type: ignore[attr-defined]
            PROBE.hook_exchange(exchange)
            await session.open()
            ids = {s: exchange.market(s)["id"] for s in symbols}
            PROBE.hook_feed(session.feed, ids)
            PROBE.hook_session(session)
            gc.callbacks.append(PROBE.gc_callback)
            running = asyncio.create_task(session.run())
            await fake.publish(args.books_per_s, args.trades_per_s, args.warmup)
            PROBE.recording = True
            sent = await fake.publish(args.books_per_s, args.trades_per_s, args.seconds)
            await asyncio.sleep(0.3)
            PROBE.recording = False
            session.stop("bench done")
            snapshot = await running
            rows = await asyncio.to_thread(count_rows, db)
    finally:
        await fake.close()
    print(f"fake sent books={sent['books']} trades={sent['trades']} in {sent['elapsed_s']:.2f} s "
          f"(behind schedule max {sent['behind_max_ms']:.1f} ms; its send p50/p99 {sent['send_p50_us']:.0f}/"
          f"{sent['send_p99_us']:.0f} us); ccxt handled depth={PROBE.depth_msgs} trades={PROBE.trade_msgs}; "
          f"feed emitted books={PROBE.books_delivered} trades={PROBE.trades_delivered} (depth messages overtaken "
          f"before the feed took the book: {PROBE.books_coalesced}); fills={snapshot.fills}; rows saved {rows}")
    gc_us = [p / 1e3 for p in PROBE.gc_pauses]
    print(f"gc while measuring: collections={len(gc_us)} max_us={max(gc_us, default=0):.0f} "
          f"total_ms={sum(gc_us) / 1e3:.1f}")
    report(PROBE.samples)


def count_rows(db: Path) -> dict[str, int]:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("market_data", "decisions", "orders", "fills")}
    finally:
        conn.close()


def main(argv: list[str] | None = None, runner: Callable[[argparse.Namespace], Any] = run) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured publishing time")
    parser.add_argument("--warmup", type=float, default=3.0, help="publishing before measuring")
    parser.add_argument("--symbols", type=int, default=2, help=f"symbols (at most {len(BASES)})")
    parser.add_argument("--books-per-s", type=float, default=100.0, help="book updates per second, all symbols")
    parser.add_argument("--trades-per-s", type=float, default=20.0, help="trades per second, all symbols")
    parser.add_argument("--serve-fake", type=int, metavar="SYMBOLS", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_fake is not None:
        asyncio.run(serve_fake(args.serve_fake))
        return
    if not 1 <= args.symbols <= len(BASES):
        parser.error(f"--symbols must be 1..{len(BASES)}")
    asyncio.run(runner(args))


if __name__ == "__main__":
    main()
