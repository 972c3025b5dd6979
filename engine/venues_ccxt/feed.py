"""A ccxt exchange's public market data as a Feed: per symbol, its order book and its trades, streamed over websockets
(ccxt.pro) or polled over REST.

Each symbol runs its own tasks; what they receive waits in a buffer that receive() empties. Events keep the venue's
timestamp (our clock's where the venue gives none); the batch carries our clock at delivery. When a symbol's data can
no longer be vouched for (a skipped book update, a dropped connection, a rate limit) the feed retries with backoff and
says so in health(); once the symbol is whole again it reports the gap through on_gap, from the last event received
for the symbol to the moment it recovered, in our clock's nanoseconds. An update the engine cannot use (a price or
size that is not a finite number above zero, a message ccxt could not read) is dropped, counted in health() and told
to on_dropped: the 1st, 10th, 100th... so a venue sending nothing but garbage cannot flood the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ccxt

from engine.clock import Clock
from engine.data.feed import FeedBatch, FeedHealth
from engine.model.market import Bar, BookSnapshot, MarketEvent, TradeTick, event_time
from engine.model.order import OrderSide
from engine.venues_ccxt.connection import Backoff, UnreadableMessages, retry_after_s
from engine.venues_ccxt.history import warmup_bars
from engine.venues_ccxt.markets import find_market

NS_PER_MS = 1_000_000
GapListener = Callable[[str, int, int, str], None]  # (symbol, start_ns, end_ns, reason)
DropListener = Callable[[str], None]  # a line: what was dropped, and how many so far


TRADES_CONFIRM_S = 1.0  # a re-watched trade stream that has not failed for this long counts as back

@dataclass(frozen=True, slots=True)
class FeedGap:
    """A stretch of time in which a symbol's data may be incomplete."""

    symbol: str
    start_ns: int
    end_ns: int
    reason: str


@dataclass(slots=True)
class _SymbolState:
    last_received_ns: int  # our clock at the last event (or at subscribing)
    mid: float | None = None
    problems: dict[str, str] = field(default_factory=dict)  # stream ("book", "trades", "poll") -> what is wrong
    down_since_ns: int | None = None
    reason: str = ""


class CcxtFeed:
    """Books (to `depth` levels) and trades for the subscribed symbols of one ccxt exchange.

    snapshot_limit is the number of levels asked for in a REST book snapshot (None: ccxt's default for the venue).
    websockets=False polls REST every rest_poll_interval_s; the feed also falls back to polling by itself when the
    client cannot watch (ccxt.NotSupported). rng draws the backoff jitter, so a seeded one makes retries repeatable.
    """

    def __init__(self, exchange: Any, clock: Clock, *, depth: int = 10, snapshot_limit: int | None = None,
                 websockets: bool = True, poll_interval_s: float = 0.25, rest_poll_interval_s: float = 1.0,
                 backoff: Backoff | None = None, rng: random.Random | None = None,
                 on_gap: GapListener | None = None) -> None:
        self.exchange = exchange
        self.clock = clock
        self.name = f"{exchange.id} (ccxt)"
        self.depth = depth
        self.snapshot_limit = snapshot_limit
        self.websockets = websockets
        self.mode = "websocket" if websockets else "REST polling"
        self.poll_interval_s = poll_interval_s
        self.rest_poll_interval_s = rest_poll_interval_s
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.on_gap = on_gap
        self.on_dropped: DropListener | None = None
        self.last_gap: FeedGap | None = None
        self.dropped = 0
        self.last_dropped = ""
        unreadable = getattr(exchange, "unreadable", None)
        if isinstance(unreadable, UnreadableMessages):
            unreadable.listeners.append(lambda why: self._drop("", f"a message ccxt could not read ({why})"))
        self._symbols: dict[str, _SymbolState] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pending: list[MarketEvent] = []
        self._arrived = asyncio.Event()
        self._last_event_ns: int | None = None
        self._last_received_ns: int | None = None
        self._connected = False
        self._closed = False

    async def connect(self) -> None:
        await self.exchange.load_markets()
        self._connected = True

    async def subscribe(self, symbols: list[str]) -> None:
        """Start streaming symbols not yet streamed; an unlisted symbol is an error naming the closest listed ones."""
        if not self._connected:
            await self.connect()
        for symbol in symbols:
            find_market(self.exchange.markets, symbol, self.exchange.id)
        for symbol in symbols:
            if symbol not in self._tasks:
                self._symbols[symbol] = _SymbolState(self.clock.now_ns())
                self._tasks[symbol] = asyncio.create_task(self._run(symbol), name=f"ccxt-feed-{symbol}")

    async def history(self, wants: Mapping[tuple[str, str], int], until_ns: int) -> tuple[list[Bar], list[str]]:
        """The exchange's candles before until_ns, as warm-up bars, and what it could not give (HasHistory)."""
        return await warmup_bars(self.exchange, wants, until_ns)

    async def receive(self) -> FeedBatch:
        """What arrived since the last call, oldest first; an empty batch if nothing came within poll_interval_s."""
        self._raise_failure()
        if not self._pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), self.poll_interval_s)
        events, self._pending = self._pending, []
        self._arrived.clear()
        events.sort(key=event_time)
        if events:
            self._last_event_ns = max(self._last_event_ns or 0, event_time(events[-1]))
        return FeedBatch(self.clock.now_ns(), events)

    def health(self) -> FeedHealth:
        problems = [f"{symbol} {stream}: {problem}" for symbol, state in self._symbols.items()
                    for stream, problem in state.problems.items()]
        if self._closed or not self._connected:
            detail = "closed" if self._closed else "not connected"
        elif problems:
            detail = "; ".join(problems)
        else:
            detail = f"{self.mode} from {self.exchange.id}, {len(self._symbols)} symbols"
            if self.last_gap is not None:
                gap = self.last_gap
                detail += (f"; last gap {gap.symbol} {(gap.end_ns - gap.start_ns) / 1e9:.3g} s "
                           f"({gap.reason})")
        if self.dropped and not self._closed:
            detail += f"; dropped {self.dropped} unusable update(s), the last: {self.last_dropped}"
        connected = self._connected and not self._closed and not problems
        return FeedHealth(connected, self._last_event_ns, self._last_received_ns, detail,
                          {symbol: state.last_received_ns for symbol, state in self._symbols.items()})

    def state(self) -> dict[str, Any] | None:
        return None  # a live venue continues by itself

    def restore(self, state: dict[str, Any]) -> None:
        """Nothing to restore: the venue's own streams carry on."""

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.exchange.close()

    # ---------------------------------------------------------------- per-symbol tasks

    async def _run(self, symbol: str) -> None:
        if self.websockets:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._watch_books(symbol))
                    group.create_task(self._watch_trades(symbol))
            except* ccxt.NotSupported as unsupported:
                self.websockets = False
                self.mode = f"REST polling (cannot watch: {_describe(unsupported.exceptions[0])})"
        await self._poll(symbol)

    async def _watch_books(self, symbol: str) -> None:
        attempt = 0
        while True:
            try:
                book = await self.exchange.watch_order_book(symbol, self.snapshot_limit)
            except ccxt.NotSupported:
                raise
            except ccxt.InvalidNonce as error:
                # an update id was skipped (ChecksumError is one): the book is wrong until a snapshot replaces it
                self._down(symbol, "book", f"sequence gap ({_describe(error)})", "resyncing from REST")
                try:
                    book = await self.exchange.fetch_order_book(symbol, self.snapshot_limit)
                except ccxt.BaseError as rest_error:
                    await self._back_off(symbol, "book", rest_error, attempt)
                    attempt += 1
                    continue
            except ccxt.BaseError as error:
                await self._back_off(symbol, "book", error, attempt)
                attempt += 1
                continue
            attempt = 0
            self._on_book(symbol, book)
            self._up(symbol, "book")

    async def _watch_trades(self, symbol: str) -> None:
        attempt = 0
        recovering = False
        while True:
            try:
                trades = await (self._rewatch_trades(symbol) if recovering else self.exchange.watch_trades(symbol))
            except ccxt.NotSupported:
                raise
            except ccxt.BaseError as error:
                await self._back_off(symbol, "trades", error, attempt)
                attempt += 1
                recovering = True
                continue
            if recovering:
                recovering = False
                self._up(symbol, "trades")
            attempt = 0
            for trade in trades:
                self._on_trade(symbol, trade)

    async def _rewatch_trades(self, symbol: str) -> Any:
        """Watch trades again after a failure: back once a print arrives, or once the watch has not failed for
        TRADES_CONFIRM_S (a quiet market may print nothing for a while); a stream that keeps failing is never
        called back. (A direct await elsewhere: a watch started a loop turn late can miss a message.)"""
        call = asyncio.ensure_future(self.exchange.watch_trades(symbol))
        try:
            await asyncio.wait({call}, timeout=TRADES_CONFIRM_S)
            if not call.done():
                self._up(symbol, "trades")
            return await call
        finally:
            if not call.done():
                call.cancel()

    async def _poll(self, symbol: str) -> None:
        attempt = 0
        tape = _TapeCursor()
        while True:
            try:
                book = await self.exchange.fetch_order_book(symbol, self.snapshot_limit)
                trades = await self.exchange.fetch_trades(symbol, tape.since)
            except ccxt.NotSupported:
                raise
            except ccxt.BaseError as error:
                await self._back_off(symbol, "poll", error, attempt)
                attempt += 1
                continue
            attempt = 0
            self._on_book(symbol, book)
            for trade in tape.new(trades):
                self._on_trade(symbol, trade)
            self._up(symbol, "poll")
            await asyncio.sleep(self.rest_poll_interval_s)

    # ---------------------------------------------------------------- events, outages and gaps

    def _on_book(self, symbol: str, book: Mapping[str, Any]) -> None:
        now = self.clock.now_ns()
        state = self._symbols[symbol]
        unusable: list[Sequence[Any]] = []
        bids = _levels(book.get("bids") or (), self.depth, unusable)
        asks = _levels(book.get("asks") or (), self.depth, unusable)
        if unusable:
            self._drop(symbol, f"{len(unusable)} book level(s) like {list(unusable[0][:2])!r}")
        if bids and asks:
            state.mid = (bids[0][0] + asks[0][0]) / 2.0
        self._emit(state, BookSnapshot(_stamp(book, now), symbol, bids, asks), now)

    def _on_trade(self, symbol: str, trade: Mapping[str, Any]) -> None:
        now = self.clock.now_ns()
        state = self._symbols[symbol]
        price, amount, side = _positive(trade.get("price")), _positive(trade.get("amount")), trade.get("side")
        if price is None or amount is None:
            self._drop(symbol, f"a trade of {trade.get('amount')!r} at {trade.get('price')!r}")
            return
        if side in ("buy", "sell"):
            aggressor = OrderSide.BUY if side == "buy" else OrderSide.SELL
        else:
            # the venue does not say who took liquidity: a print at or above the mid took the ask
            aggressor = OrderSide.BUY if state.mid is None or price >= state.mid else OrderSide.SELL
        self._emit(state, TradeTick(_stamp(trade, now), symbol, price, amount, aggressor), now)

    def _drop(self, symbol: str, what: str) -> None:
        self.dropped += 1
        self.last_dropped = f"{symbol} {what}".strip()
        n = self.dropped
        if self.on_dropped is not None and n == 10 ** (len(str(n)) - 1):  # the 1st, 10th, 100th...
            self.on_dropped(f"{self.exchange.id}: dropped {self.last_dropped} ({n} so far)")

    def _emit(self, state: _SymbolState, event: MarketEvent, now: int) -> None:
        self._pending.append(event)
        self._arrived.set()
        state.last_received_ns = self._last_received_ns = now

    async def _back_off(self, symbol: str, stream: str, error: ccxt.BaseError, attempt: int) -> None:
        delay = self.backoff.delay(attempt, self.rng)
        if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            asked = retry_after_s(self.exchange.last_response_headers)
            delay = max(delay, asked or 0.0)
            plan = f"retrying in {delay:.3g} s" + ("" if asked is None else f" (Retry-After: {asked:g} s)")
            self._down(symbol, stream, f"rate limited ({_describe(error)})", plan)
        else:
            self._down(symbol, stream, _describe(error), f"reconnecting in {delay:.3g} s")
        await asyncio.sleep(delay)

    def _down(self, symbol: str, stream: str, cause: str, plan: str) -> None:
        state = self._symbols[symbol]
        if state.down_since_ns is None:
            state.down_since_ns, state.reason = state.last_received_ns, f"{stream}: {cause}"
        state.problems[stream] = f"{cause}; {plan}"

    def _up(self, symbol: str, stream: str) -> None:
        state = self._symbols[symbol]
        state.problems.pop(stream, None)
        if state.problems or state.down_since_ns is None:
            return
        self.last_gap = gap = FeedGap(symbol, state.down_since_ns, self.clock.now_ns(), state.reason)
        state.down_since_ns = None
        if self.on_gap is not None:
            self.on_gap(gap.symbol, gap.start_ns, gap.end_ns, gap.reason)

    def _raise_failure(self) -> None:
        """A symbol's task that stopped on an error nobody can retry (a bug, no REST either) stops the feed."""
        for task in self._tasks.values():
            if task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    raise error


class _TapeCursor:
    """Which polled trades are new. The first poll only marks where the tape stands (a websocket, too, sees only
    prints after it subscribes); later polls ask from the newest print time seen and drop prints already delivered."""

    def __init__(self) -> None:
        self.since: int | None = None  # venue milliseconds of the newest print delivered
        self._seen: set[Any] = set()  # the prints delivered at exactly `since`
        self._primed = False

    def new(self, trades: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        fresh = []
        for trade in sorted((t for t in trades if t.get("timestamp") is not None), key=lambda t: t["timestamp"]):
            ts, key = int(trade["timestamp"]), trade.get("id") or (trade["price"], trade["amount"], trade.get("side"))
            if self.since is not None and (ts < self.since or (ts == self.since and key in self._seen)):
                continue
            if self.since is None or ts > self.since:
                self.since, self._seen = ts, set()
            self._seen.add(key)
            fresh.append(trade)
        primed, self._primed = self._primed, True
        return fresh if primed else []


def _levels(side: Sequence[Sequence[Any]], depth: int,
            unusable: list[Sequence[Any]]) -> tuple[tuple[float, float], ...]:
    """The best `depth` levels of a side whose price and size the engine can use; the others met on the way are
    added to unusable."""
    out: list[tuple[float, float]] = []
    for level in side:
        price, qty = _positive(level[0]), _positive(level[1])
        if price is None or qty is None:
            unusable.append(level)
            continue
        out.append((price, qty))
        if len(out) == depth:
            break
    return tuple(out)


def _positive(value: Any) -> float | None:
    """value as a price or a size: a finite number above zero, else None (ccxt gives -1, 0, inf or None for what a
    venue sent wrong)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _stamp(item: Mapping[str, Any], received_ns: int) -> int:
    ts = item.get("timestamp")
    return received_ns if ts is None else int(ts) * NS_PER_MS


def _describe(error: BaseException) -> str:
    """The error's kind and first sentence (ccxt appends advice, and sometimes a whole reply body)."""
    text = " ".join(str(error).split()).split(". ")[0]
    return f"{type(error).__name__}: {text[:160]}"
