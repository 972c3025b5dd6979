"""Orders on an exchange's testnet through ccxt (venue mode "sandbox"), behind the Broker protocol.

submit and cancel schedule their REST calls as tasks and return at once; the exchange's answers and its user-data
stream (watch_orders, watch_my_trades) come back as VenueEvents. Fills are keyed by the exchange's trade id, so a trade
seen on the stream and again over REST is applied once. A request whose answer was lost (a timeout, a dropped
connection, a rate limit) is never simply sent again: the order is looked up by its client id first. When the stream
is quiet for a while, or after it reconnects, open orders and trades are checked over REST.

The engine's client ids (O0000001, ...) start again every session, so the exchange sees them behind a run tag made
from the session's start (its stored market_start_ns): pd<base36 ms>-O0000001; after the session's n-th restart,
pd<base36 ms>.n-O0000001, so an order sent just before a crash (which the saved state may not know) never shares an id
with one sent after it.

A create whose answer was lost may still reach the exchange until its receive window (recvWindow) has passed, and
Binance keeps client ids unique only among open orders: so a lost create is sent again only once the window is over
and a lookup by client id still finds nothing.

On a resume the broker is told what the session knew (adopt) and reconciles when it connects: each order the session
had working is looked up by its client id and settled (fills it had while we were down are applied once, by trade id);
an order of this session the saved state does not know, or balances that the session's fills do not explain, are a
mismatch the session halts on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import statistics
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ccxt

from engine.brokers.broker import AccountSnapshot, VenueCapabilities
from engine.brokers.transcript import Baseline, KnownState
from engine.clock import Clock, monotonic_s, wall_ns
from engine.model.fill import Fill, FillBasis, Liquidity
from engine.model.instrument import Instrument
from engine.model.market import Bar, BookSnapshot, TradeTick
from engine.model.order import Order, OrderStatus, OrderType, TimeInForce
from engine.model.venue_event import CancelAck, VenueEvent, VenueEventKind
from engine.venues_ccxt.connection import Backoff, UnreadableMessages, retry_after_s
from engine.venues_ccxt.credentials import Credentials, CredentialsError
from engine.venues_ccxt.markets import VenueInputError

K = VenueEventKind
T = TypeVar("T")
log = logging.getLogger("paperdesk.venue")

ORDER_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT})
LATENCY_WINDOW = 64
BACKOFF = Backoff(0.2, 10.0)
RECV_WINDOW_MARGIN_S = 1.0  # clock skew between us and the exchange
ORDERS_PAGE = 1000  # Binance's largest allOrders page
SAVE_LAG_S = 1.0  # how long a session can go on after its last saved step before a crash (a few store flushes)
_EPS = 1e-9


def run_tag(start_ns: int) -> str:
    """The prefix that keeps this session's client ids apart from every other session's at the exchange."""
    ms, digits = start_ns // 1_000_000, ""
    while ms:
        ms, rest = divmod(ms, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
    return f"pd{digits or '0'}"


_QUERY = re.compile(r"(\bhttps?://[^\s?]+)\?\S*")


def exchange_message(exc: BaseException) -> str:
    """What the exchange said, without ccxt's wrapping ('binance {"code":-2010,"msg":"..."}' -> '-2010 ...').

    A request's query string is cut: ccxt puts the signed URL (timestamp, signature) in its network errors, and this
    text reaches logs, health and the database."""
    text = _QUERY.sub(r"\1?...", " ".join(str(exc).split()))
    start = text.find("{")
    if start >= 0:
        try:
            body = json.loads(text[start:])
        except ValueError:
            body = None
        if isinstance(body, dict) and "msg" in body:
            return f"{body.get('code', '')} {body['msg']}".strip()
    return f"{type(exc).__name__}: {text[:200]}"


@dataclass(eq=False)
class _Working:
    """One order this broker sent, as far as the exchange has told us."""

    order: Order
    venue_client_id: str
    submitted: float                 # monotonic seconds when submit() was called
    submitted_ms: int                # wall time then, for REST queries of its trades
    mid: float
    exchange_id: str | None = None
    acked: bool = False
    latency_ns: int = 0
    filled: float = 0.0              # quantity applied from the exchange's trades
    ended: VenueEventKind | None = None  # CANCELED, EXPIRED or REJECTED once reported
    placing: asyncio.Task[None] | None = None
    canceling: asyncio.Task[None] | None = None
    cancel_reason: str = ""
    last_sent: float = 0.0           # monotonic seconds when the latest create request went out

    @property
    def done(self) -> bool:
        return self.ended is not None or self.filled >= self.order.qty - _EPS * max(1.0, self.order.qty)


@dataclass
class _Health:
    stream_up: bool = False
    reconnects: int = 0
    rate_limited: int = 0
    retries: int = 0
    rest_checks: int = 0
    last_error: str = ""
    last_error_at: float | None = None  # wall seconds
    latencies: dict[str, deque[float]] = field(default_factory=dict)


class CcxtBroker:
    """Orders on a ccxt exchange's testnet. The exchange client is keyed and switched to the testnet by its maker."""

    def __init__(self, exchange: Any, clock: Clock, instruments: dict[str, Instrument], name: str,
                 credentials: Credentials, quiet_s: float = 5.0, backoff: Backoff = BACKOFF) -> None:
        self.exchange = exchange
        self.clock = clock
        self.instruments = instruments
        self.events: deque[VenueEvent] = deque()
        self.capabilities = VenueCapabilities(
            name, paper=True, order_types=ORDER_TYPES, time_in_force=frozenset(TimeInForce), modify=False,
            native_stops=False, simulated=False, live_market=True)
        self.tag = run_tag(clock.now_ns())
        self.quiet_s = quiet_s
        self.backoff = backoff
        self.balances: dict[str, tuple[float, float]] = {}  # asset -> (free, used), from the latest fetch_balance
        self.reconciliation: str | None = None  # what connect found on the exchange, for status and the console
        self.mismatch: str | None = None  # what a resume's reconciliation could not explain
        self.run = 0  # the session's restarts so far: part of every client id this broker sends
        options = getattr(exchange, "options", None) or {}
        self.recv_window_s = float(options.get("recvWindow") or 10_000) / 1000.0 + RECV_WINDOW_MARGIN_S
        self._start_ms = clock.now_ns() // 1_000_000
        self._known: KnownState | None = None
        self._baseline: Baseline | None = None  # saved once the session has a journal (HoldsOrders.baseline)
        self._by_venue_ref: dict[str, _Working] = {}
        self._credentials = credentials
        self._orders: dict[str, _Working] = {}           # by our client id
        self._by_exchange_id: dict[str, _Working] = {}
        self._seen_trades: set[str] = set()
        self._books: dict[str, BookSnapshot] = {}
        self._health = _Health()
        unreadable = getattr(exchange, "unreadable", None)
        if isinstance(unreadable, UnreadableMessages):  # the user-data stream reads on past it, and says so here
            unreadable.listeners.append(self._unreadable)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_heard = monotonic_s()
        self._check_due = False
        self._closed = False
        self._rng = random.Random()

    # ---- Broker ---------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Check the keys over REST, list the orders the exchange already works for our symbols, start the stream."""
        try:
            await self._rest("load_markets", self.exchange.load_markets)
            self._keep_balance(await self._rest("fetch_balance", self.exchange.fetch_balance))
            if self._known is not None:
                await self._reconcile(self._known)
            else:
                self._baseline = Baseline(self._held())
                await self._report_open()
            # returns once the exchange confirmed the subscription, so no order of ours goes out before it
            await self.exchange.authenticate({"type": "spot"})
        except ccxt.AuthenticationError as exc:
            await self._close_client()
            raise CredentialsError(f"{self.capabilities.name} refused the testnet key in {self._credentials.key_env} "
                                   f"or its secret in {self._credentials.secret_env} ({exchange_message(exc)}). "
                                   f"Nothing was traded") from None
        except (ccxt.BaseError, KeyError) as exc:
            await self._close_client()
            raise VenueInputError(f"{self.capabilities.name}: cannot start trading on the testnet "
                                  f"({exchange_message(exc)}); nothing was traded") from None
        self._health.stream_up = True
        self._check_due = self._known is not None  # what changed between the reconciliation and the subscription
        self._spawn(self._stream("orders", self.exchange.watch_orders, self._on_order))
        self._spawn(self._stream("myTrades", self.exchange.watch_my_trades, self._on_trade))
        self._spawn(self._watchdog())

    def venue_ref(self, client_id: str) -> str | None:
        working = self._orders.get(client_id)
        return working.venue_client_id if working is not None else None

    def baseline(self) -> Baseline | None:
        baseline, self._baseline = self._baseline, None
        return baseline

    def adopt(self, known: KnownState) -> None:
        self._known = known
        self.run = known.run

    @property
    def prefix(self) -> str:
        """What every client id this broker sends starts with."""
        return self.tag if self.run == 0 else f"{self.tag}.{self.run}"

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_client()

    def submit(self, order: Order) -> None:
        problem = self._unsupported(order)
        if problem is not None:
            self.events.append(VenueEvent(K.REJECTED, order.client_id, self.clock.now_ns(), problem))
            return
        book = self._books.get(order.symbol)
        mid = book.mid if book is not None and book.bids and book.asks else 0.0
        working = _Working(order, f"{self.prefix}-{order.client_id}", monotonic_s(), wall_ns() // 1_000_000, mid)
        self._track(working)
        working.placing = self._spawn(self._place(working))

    def cancel(self, client_id: str, reason: str) -> CancelAck:
        working = self._orders.get(client_id)
        if working is None or working.done:
            return CancelAck.UNKNOWN
        if working.canceling is None or working.canceling.done():
            working.cancel_reason = reason
            working.canceling = self._spawn(self._cancel(working))
        return CancelAck.PENDING

    def modify(self, client_id: str, qty: float | None = None, price: float | None = None) -> bool:
        return False  # capabilities.modify is False: the order manager cancels and replaces

    def advance(self, ts: int) -> None:
        """The exchange keeps its own time."""

    def on_book(self, book: BookSnapshot) -> None:
        self._books[book.symbol] = book  # the mid at decision time, for each fill's slippage

    def on_trade(self, tick: TradeTick) -> None:
        """The exchange matches on its own book."""

    def on_bar(self, bar: Bar) -> None:
        """The exchange matches on its own book."""

    async def account(self) -> AccountSnapshot:
        """Balances (free + used) from fetch_balance, and the client ids of our orders the exchange works."""
        self._keep_balance(await self._rest("fetch_balance", self.exchange.fetch_balance))
        working: list[str] = []
        for symbol in self.instruments:
            for info in await self._rest("fetch_open_orders", self.exchange.fetch_open_orders, symbol):
                found = self._ours(info.get("clientOrderId"), None)
                if found is not None:
                    working.append(found.order.client_id)
        return AccountSnapshot({asset: free + used for asset, (free, used) in self.balances.items()}, {},
                               tuple(working))

    # ---- what an operator or a breaker reads ----------------------------------------------------------

    def health(self) -> dict[str, Any]:
        h = self._health
        return {"stream": "up" if h.stream_up else "down", "reconnects": h.reconnects,
                "rate_limited": h.rate_limited, "retries": h.retries, "rest_checks": h.rest_checks,
                "last_error": h.last_error, "last_error_at": h.last_error_at}

    def latency_ms(self) -> dict[str, dict[str, float]]:
        """Per REST call (and "order_ack": submit to acknowledgement) the latest, median and worst of the last few."""
        return {name: {"last": window[-1], "median": statistics.median(window), "max": max(window),
                       "count": float(len(window))}
                for name, window in self._health.latencies.items() if window}

    # ---- reconciliation -------------------------------------------------------------------------

    async def _report_open(self) -> None:
        """A new session: orders already open for our symbols are named and left alone; the balances are noted."""
        found = []
        for symbol in self.instruments:
            for info in await self._rest("fetch_open_orders", self.exchange.fetch_open_orders, symbol):
                found.append(f"{info.get('side')} {info.get('amount')} {symbol}")
                log.warning("%s already works order %s (%s %s %s at %s, %s filled) from before this session; "
                            "left alone", self.capabilities.name, info.get("clientOrderId") or info.get("id"),
                            info.get("side"), info.get("amount"), symbol, info.get("price"), info.get("filled"))
        held = ", ".join(f"{asset} {free + used:g}" for asset, (free, used) in sorted(self.balances.items())
                         if free + used) or "none"
        self.reconciliation = (f"at connect: {len(found)} order(s) already open on the exchange, left alone"
                               + (f" ({'; '.join(found[:5])})" if found else "") + f"; balances {held}")

    async def _reconcile(self, known: KnownState) -> None:
        """A resume: settle each order the session had working as the exchange holds it now, then look for what the
        session cannot explain (orders of this session it never saved; balances its fills do not account for)."""
        self._seen_trades.update(fill.fill_id for fill in known.fills)
        outcome: Counter[str] = Counter()
        problems: list[str] = []
        queued = len(self.events)
        adopted = []
        for k in known.open_orders:
            working = _Working(k.order, k.venue_ref, monotonic_s(), k.sent_ts // 1_000_000, 0.0,
                               acked=k.order.status not in (OrderStatus.SUBMITTED, OrderStatus.TRIGGERED),
                               filled=k.order.filled_qty)
            self._track(working)
            info = await self._find(working)
            if info is None and not working.acked:
                # sent (or sent again) as late as the crash, which came after the last saved step: it may still arrive
                wait = (max(k.sent_ts, known.saved_until_ns) / 1e9 + self.recv_window_s + SAVE_LAG_S
                        - wall_ns() / 1e9)
                if wait > 0:
                    await asyncio.sleep(wait)
                info = await self._find(working)
            if info is None and working.acked:
                problems.append(f"order {k.venue_ref} ({k.order.side.name} {k.order.qty:g} {k.order.symbol}) was "
                                "working at the exchange and the exchange no longer finds it")
                outcome["no longer found"] += 1
                continue
            if info is None:
                self._end(working, K.REJECTED, "never reached the exchange (not found by its client id "
                                               f"{k.venue_ref} once its receive window was over)")
                outcome["never reached the exchange"] += 1
                continue
            await self._settle(working, info)
            adopted.append(working)
            if not working.done and k.order.status is OrderStatus.PENDING_CANCEL:
                working.cancel_reason = "canceled on request (asked again after the restart)"
                working.canceling = self._spawn(self._cancel(working))
            outcome["still open" if not working.done else "filled while away" if working.ended is None
                    else f"{working.ended.value.lower()} while away"] += 1
        for order in known.unsent:  # refused here before it went out; the refusal was lost with the crash
            self.events.append(VenueEvent(K.REJECTED, order.client_id, self.clock.now_ns(),
                                          self._unsupported(order) or "not sent to the exchange"))
        strangers, refs = await self._strangers(known)
        problems += strangers
        # balances after the orders are settled: what their fills moved is in them; a fill in between is looked for
        for last_try in (False, True):
            self._keep_balance(await self._rest("fetch_balance", self.exchange.fetch_balance))
            fills = known.fills + [e.fill for e in list(self.events)[queued:] if e.fill is not None]
            unexplained = self._unexplained_balances(known, fills)
            if not unexplained or last_try:
                break
            for working in adopted:
                if not working.done and working.exchange_id is not None:
                    await self._settle(working, await self._rest("fetch_order", self.exchange.fetch_order,
                                                                 working.exchange_id, working.order.symbol))
        problems += unexplained
        new_fills = len(fills) - len(known.fills)
        self._baseline = Baseline(self._held(), len(fills), sorted(set(known.baseline.strangers if known.baseline
                                                                       else []) | set(refs)))
        orders = ", ".join(f"{n} {what}" for what, n in sorted(outcome.items())) or "none"
        checked = "balances as its fills say" if known.baseline is not None else "balances not checked (none saved)"
        self.reconciliation = (f"after restart {known.run}: {len(known.open_orders)} order(s) the session had "
                               f"working ({orders}); {new_fills} fill(s) from while it was down applied once; "
                               + ("MISMATCH: " + "; ".join(problems) if problems else checked))
        self.mismatch = "; ".join(problems) if problems else None

    async def _strangers(self, known: KnownState) -> tuple[list[str], list[str]]:
        """Orders this session sent that its saved state does not know: sent after the last saved step, so asked for
        from then (less the receive window), page by page; one already reported at an earlier restart is not again."""
        reported = set(known.baseline.strangers) if known.baseline is not None else set()
        found, refs = [], []
        for symbol in self.instruments:
            since = known.saved_until_ns // 1_000_000 - int((self.recv_window_s + 60.0) * 1000)
            while True:
                page = await self._retrying("fetch_orders", self.exchange.fetch_orders, symbol, since, ORDERS_PAGE,
                                            tries=5)
                for info in page:
                    ref = info.get("clientOrderId")
                    if self._of_this_session(ref) and ref not in known.venue_refs and ref not in reported \
                            and ref not in refs:
                        refs.append(ref)
                        found.append(f"order {ref} ({info.get('side')} {info.get('amount')} {symbol}, "
                                     f"{info.get('status')}, {info.get('filled') or 0} filled) was sent by this "
                                     "session but is not in its saved state: check it on the exchange, cancel or "
                                     "close it, then resume trading")
                stamps = [int(info["timestamp"]) for info in page if info.get("timestamp") is not None]
                if len(page) < ORDERS_PAGE or not stamps or max(stamps) + 1 <= since:
                    break
                since = max(stamps) + 1
        return found, refs

    def _held(self) -> dict[str, float]:
        """Free + locked of each asset of this session's instruments."""
        assets = {a for i in self.instruments.values() for a in (i.base, i.quote)}
        return {asset: free + used for asset, (free, used) in self.balances.items() if asset in assets}

    def _unexplained_balances(self, known: KnownState, fills: list[Fill]) -> list[str]:
        """Each of our instruments' assets should hold what it held at the last baseline plus what the session's
        fills since then moved, give or take their fees (which Binance may take in either asset) and a lot."""
        baseline = known.baseline
        if baseline is None:
            return []  # a session saved before baselines were: nothing to compare with
        expected: dict[str, float] = defaultdict(float)
        slack: dict[str, float] = defaultdict(float)
        for instrument in self.instruments.values():
            expected[instrument.base] = baseline.balances.get(instrument.base, 0.0)
            expected[instrument.quote] = baseline.balances.get(instrument.quote, 0.0)
            slack[instrument.base] += instrument.lot_size
        for fill in fills[baseline.fills:]:
            instrument = self.instruments[fill.symbol]
            expected[instrument.base] += fill.side * fill.qty
            expected[instrument.quote] -= fill.side * fill.qty * fill.price
            slack[instrument.base] += fill.fee / fill.price if fill.price else 0.0
            slack[instrument.quote] += fill.fee + 1e-8 * fill.qty * fill.price
        held = self._held()
        problems = []
        for asset, want in sorted(expected.items()):
            have = held.get(asset, 0.0)
            if abs(have - want) > slack[asset] + 1e-9 * max(1.0, abs(want)):
                problems.append(f"{asset}: the exchange holds {have:.10g}, the session's fills since it last "
                                f"reconciled say {want:.10g}")
        return problems

    # ---- orders out -----------------------------------------------------------------------------

    def _unsupported(self, order: Order) -> str | None:
        caps = self.capabilities
        if order.type not in caps.order_types:
            return (f"{caps.name} takes {', '.join(sorted(caps.order_types))} orders here; a {order.type} order is "
                    f"not sent (the engine holds stops for this venue and sends them as market or limit orders "
                    f"when they trigger)")
        if order.symbol not in self.instruments:
            return f"{order.symbol} is not an instrument of this session"
        return None

    async def _place(self, working: _Working) -> None:
        """Send the order until the exchange answers it; after a lost answer, look it up before sending again."""
        order = working.order
        params: dict[str, Any] = {"clientOrderId": working.venue_client_id}
        if order.type is OrderType.LIMIT:
            params["timeInForce"] = order.tif.value
        maybe_sent, was_sent, sent_before = False, False, 0.0
        attempt = 0
        while True:
            creating = False  # the exception below came from the create itself, not from a lookup
            try:
                if maybe_sent:
                    found = await self._find(working)
                    if found is not None:
                        await self._settle(working, found)
                        return
                    if monotonic_s() - working.last_sent < self.recv_window_s:
                        # the lost request may still arrive: sending it again now could trade twice
                        await self._pause(attempt, None)
                        attempt += 1
                        continue
                was_sent, sent_before = maybe_sent, working.last_sent
                maybe_sent, working.last_sent, creating = True, monotonic_s(), True
                reply = await self._rest("create_order", self.exchange.create_order, order.symbol,
                                         order.type.value.lower(), "buy" if order.side > 0 else "sell", order.qty,
                                         order.price if order.type is OrderType.LIMIT else None, params)
            except ccxt.AuthenticationError as exc:
                self._end(working, K.REJECTED, f"{self.capabilities.name} refused the key in "
                                               f"{self._credentials.key_env}: {exchange_message(exc)}")
                return
            except ccxt.InvalidOrder as exc:
                if "Duplicate order" not in str(exc):
                    self._end(working, K.REJECTED, exchange_message(exc))
                    return
                # an earlier attempt did arrive and still works: the lookup at the top finds it
                await self._pause(attempt, exc)
                attempt += 1
                continue
            except ccxt.OperationFailed as exc:  # the outcome is unknown (Binance -1006 too): look it up, never assume
                if creating and isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
                    # turned away unprocessed (429/418): this attempt cannot arrive later, only earlier ones might
                    maybe_sent, working.last_sent = was_sent, sent_before
                await self._pause(attempt, exc)
                attempt += 1
                continue
            except ccxt.BaseError as exc:
                self._end(working, K.REJECTED, exchange_message(exc))
                return
            await self._settle(working, reply)
            return

    async def _find(self, working: _Working) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self._rest("fetch_order", self.exchange.fetch_order, None,
                                                     working.order.symbol, {"clientOrderId": working.venue_client_id})
        except ccxt.OrderNotFound:
            return None
        return found

    async def _cancel(self, working: _Working) -> None:
        if working.placing is not None and not working.placing.done():
            await asyncio.shield(working.placing)  # the exchange must know the order before it can cancel it
        attempt = 0
        while not working.done and working.exchange_id is not None:
            try:
                reply = await self._rest("cancel_order", self.exchange.cancel_order, working.exchange_id,
                                         working.order.symbol)
            except ccxt.OrderNotFound:
                # filled or gone before the cancel arrived: what the exchange holds now says which
                found = await self._retrying("fetch_order", self.exchange.fetch_order, working.exchange_id,
                                             working.order.symbol)
                await self._settle(working, found)
                if not working.done:
                    self._event(working, K.CANCEL_REJECTED, "the exchange no longer had the order to cancel")
                return
            except ccxt.OperationFailed as exc:  # the cancel may or may not have arrived: ask again
                await self._pause(attempt, exc)
                attempt += 1
                continue
            except ccxt.BaseError as exc:
                self._event(working, K.CANCEL_REJECTED, exchange_message(exc))
                return
            await self._settle(working, reply)
            return

    # ---- what the exchange reports ----------------------------------------------------------------

    async def _settle(self, working: _Working, info: Mapping[str, Any]) -> None:
        """Apply an order as the exchange reports it: acknowledged, its trades (fetched if any is missing), its end."""
        self._bind(working, info.get("id"))
        status = info.get("status")
        if status == "rejected":
            self._end(working, K.REJECTED, "rejected by the exchange")
            return
        self._ack(working)
        for trade in info.get("trades") or ():
            self._apply_trade(working, trade)
        filled = float(info.get("filled") or 0.0)
        if filled > working.filled + _EPS * max(1.0, filled) and working.exchange_id is not None:
            trades = await self._retrying("fetch_my_trades", self.exchange.fetch_my_trades, working.order.symbol,
                                          None, None, {"orderId": working.exchange_id})
            for trade in trades:
                self._apply_trade(working, trade)
        if status == "canceled":
            self._end(working, K.CANCELED, working.cancel_reason or "canceled by the exchange")
        elif status == "expired":
            self._end(working, K.EXPIRED, f"{working.order.tif} order expired at the exchange")

    def _on_order(self, info: dict[str, Any]) -> None:
        working = self._ours(info.get("clientOrderId"), info.get("id"))
        if working is None or working.ended is not None:
            return
        status = info.get("status")
        if status in ("canceled", "expired", "rejected"):
            # its trades may not have reached us yet: settling fetches them first, so the end comes after them
            self._spawn(self._settle(working, info))
        elif status in ("open", "closed"):
            self._bind(working, info.get("id"))
            self._ack(working)

    def _on_trade(self, trade: dict[str, Any]) -> None:
        raw = trade.get("info")
        client_id = raw.get("c") if isinstance(raw, Mapping) else None
        working = self._ours(client_id, trade.get("order"))
        if working is not None:
            self._bind(working, trade.get("order"))
            self._apply_trade(working, trade)

    def _apply_trade(self, working: _Working, trade: Mapping[str, Any]) -> None:
        order = working.order
        key = f"{order.symbol}#{trade.get('id')}"
        if key in self._seen_trades:
            return
        if working.ended in (K.EXPIRED, K.REJECTED):
            log.error("%s reported trade %s for order %s after it %s; not applied", self.capabilities.name, key,
                      order.client_id, working.ended)
            return
        self._seen_trades.add(key)
        self._ack(working)
        qty, price = float(trade["amount"]), float(trade["price"])
        working.filled += qty
        mid = working.mid
        fill = Fill(key, order.client_id, order.strategy, order.symbol, order.side, qty, price,
                    self._fee_in_quote(order.symbol, trade.get("fee"), price),
                    Liquidity.MAKER if trade.get("takerOrMaker") == "maker" else Liquidity.TAKER,
                    self.clock.now_ns(), FillBasis.VENUE, 0.0, working.latency_ns, mid,
                    order.side * (price - mid) / mid * 1e4 if mid else 0.0)
        self.events.append(VenueEvent(K.FILLED, order.client_id, fill.ts, fill=fill))

    def _fee_in_quote(self, symbol: str, fee: Any, price: float) -> float:
        """The fee in the quote currency, which is what a Fill's fee is in (Binance takes a buy's in the base)."""
        if not isinstance(fee, Mapping) or not fee.get("cost"):
            return 0.0
        instrument = self.instruments[symbol]
        cost = float(fee["cost"])
        if fee.get("currency") == instrument.quote:
            return cost
        if fee.get("currency") == instrument.base:
            return cost * price
        log.warning("%s charged a fee of %s %s on %s, in neither of its currencies; booked as 0",
                    self.capabilities.name, cost, fee.get("currency"), symbol)
        return 0.0

    def _ours(self, venue_client_id: Any, exchange_id: Any) -> _Working | None:
        working = self._by_venue_ref.get(venue_client_id) if isinstance(venue_client_id, str) else None
        if working is None and exchange_id is not None:
            working = self._by_exchange_id.get(str(exchange_id))
        return working

    def _track(self, working: _Working) -> None:
        self._orders[working.order.client_id] = working
        self._by_venue_ref[working.venue_client_id] = working

    def _of_this_session(self, venue_client_id: Any) -> bool:
        """A client id this session sent, in any of its runs."""
        if not isinstance(venue_client_id, str):
            return False
        return bool(re.fullmatch(re.escape(self.tag) + r"(\.\d+)?-\S+", venue_client_id))

    def _bind(self, working: _Working, exchange_id: Any) -> None:
        if exchange_id is not None and working.exchange_id is None:
            working.exchange_id = str(exchange_id)
            self._by_exchange_id[working.exchange_id] = working

    def _ack(self, working: _Working) -> None:
        if working.acked:
            return
        working.acked = True
        elapsed = monotonic_s() - working.submitted
        working.latency_ns = int(elapsed * 1e9)
        self._timed("order_ack", elapsed)
        self._event(working, K.ACCEPTED, latency_ns=working.latency_ns)

    def _end(self, working: _Working, kind: VenueEventKind, reason: str) -> None:
        if working.ended is not None:
            return
        working.ended = kind
        self._event(working, kind, reason)

    def _event(self, working: _Working, kind: VenueEventKind, reason: str = "", latency_ns: int = 0) -> None:
        self.events.append(VenueEvent(kind, working.order.client_id, self.clock.now_ns(), reason,
                                      latency_ns=latency_ns))

    # ---- the stream and its REST check ----------------------------------------------------------------

    async def _stream(self, name: str, watch: Callable[[], Awaitable[list[dict[str, Any]]]],
                      handle: Callable[[dict[str, Any]], None]) -> None:
        attempt = 0
        while True:
            try:
                if attempt:
                    await self.exchange.authenticate({"type": "spot"})  # subscribed again once this returns
                    self._health.stream_up = True
                    self._check_due = True  # what happened while it was down is not replayed
                    attempt = 0
                items = await watch()
            except asyncio.CancelledError:
                raise
            except (ccxt.BaseError, KeyError) as exc:  # ccxt 4.5.90 turns a refused subscription into KeyError
                self._health.stream_up = False
                self._health.reconnects += 1
                self._trouble(exc)
                await self._pause(attempt, exc)
                attempt += 1
                continue
            self._last_heard = monotonic_s()
            for item in items:
                handle(item)

    async def _watchdog(self) -> None:
        """Check orders over REST after a reconnect, or when the stream has been quiet for quiet_s."""
        try:
            await self._watch_over()
        finally:
            # a session that never calls close() still has its tasks canceled when the event loop shuts down
            await self._close_client()

    async def _watch_over(self) -> None:
        while True:
            await asyncio.sleep(min(0.25, self.quiet_s))
            quiet = monotonic_s() - self._last_heard > self.quiet_s
            if not (self._check_due or quiet) or not any(not w.done and w.acked for w in self._orders.values()):
                continue
            self._check_due = False
            self._last_heard = monotonic_s()
            try:
                await self._check()
            except ccxt.BaseError:
                self._check_due = True  # recorded by _rest; tried again on the next round

    async def _check(self) -> None:
        self._health.rest_checks += 1
        working = [w for w in self._orders.values() if not w.done and w.exchange_id is not None]
        for symbol in {w.order.symbol for w in working}:
            mine = [w for w in working if w.order.symbol == symbol]
            since = min(w.submitted_ms for w in mine) - 1000
            for trade in await self._rest("fetch_my_trades", self.exchange.fetch_my_trades, symbol, since):
                found = self._by_exchange_id.get(str(trade.get("order")))
                if found is not None:
                    self._apply_trade(found, trade)
            still_open = {str(info.get("id")) for info in
                          await self._rest("fetch_open_orders", self.exchange.fetch_open_orders, symbol)}
            for w in mine:
                if w.exchange_id not in still_open and not w.done:
                    await self._settle(w, await self._rest("fetch_order", self.exchange.fetch_order, w.exchange_id,
                                                           symbol))

    # ---- REST calls: timed, and retried with backoff where that is safe -----------------------------

    async def _rest(self, name: str, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        started = monotonic_s()
        try:
            return await call(*args)
        except ccxt.InvalidOrder:
            raise  # an answer about the order (refused, not found): the caller reports it
        except ccxt.BaseError as exc:
            self._trouble(exc)
            raise
        finally:
            self._timed(name, monotonic_s() - started)

    async def _retrying(self, name: str, call: Callable[..., Awaitable[T]], *args: Any, tries: int | None = None) -> T:
        """A read, repeated after network trouble and rate limits until it is answered (or `tries` times)."""
        attempt = 0
        while True:
            try:
                return await self._rest(name, call, *args)
            except ccxt.OperationFailed as exc:
                if tries is not None and attempt + 1 >= tries:
                    raise
                await self._pause(attempt, exc)
                attempt += 1

    async def _pause(self, attempt: int, exc: BaseException | None) -> None:
        self._health.retries += 1
        delay = self.backoff.delay(attempt, self._rng)
        if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            asked = retry_after_s(getattr(self.exchange, "last_response_headers", None))
            delay = max(delay, min(asked or 0.0, self.backoff.max_s))
        await asyncio.sleep(delay)

    def _trouble(self, exc: BaseException) -> None:
        if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            self._health.rate_limited += 1
        self._error(exchange_message(exc))

    def _unreadable(self, why: str) -> None:
        self._error(f"dropped a message ccxt could not read ({why})")

    def _error(self, line: str) -> None:
        self._health.last_error = line
        self._health.last_error_at = wall_ns() / 1e9
        log.warning("%s: %s", self.capabilities.name, line)

    def _timed(self, name: str, seconds: float) -> None:
        window = self._health.latencies.setdefault(name, deque(maxlen=LATENCY_WINDOW))
        window.append(seconds * 1000.0)

    async def _close_client(self) -> None:
        if not self._closed:
            self._closed = True
            await self.exchange.close()

    def _keep_balance(self, balance: Mapping[str, Any]) -> None:
        free, used = balance.get("free") or {}, balance.get("used") or {}
        self.balances = {asset: (float(free.get(asset) or 0.0), float(used.get(asset) or 0.0))
                         for asset in set(free) | set(used) if (free.get(asset) or used.get(asset))}

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self._health.last_error = f"{type(exc).__name__}: {exc}"
            log.error("%s: %s", self.capabilities.name, self._health.last_error, exc_info=exc)
