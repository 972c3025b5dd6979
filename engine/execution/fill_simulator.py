"""The paper venue's matching engine.

An order reaches the venue at created + latency: advance(ts) delivers, before the market event
stamped ts is applied, every order that arrived earlier, so it meets the book of its symbol as it
stood at that instant, and no fill is stamped before the order arrived. Market orders walk the
L2 book (our own takes are remembered until the next snapshot, so two orders cannot take the same
liquidity); resting limits fill only against printed trades, after the size that was displayed
ahead of them; stops trigger on trades. Without a book, market orders take from printed trades.
With bar data only, an order fills at the open of the bar during which it arrives: the next
bar's, for any latency shorter than a bar. Every fill records the depth, latency, mid and
slippage it assumed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from engine.clock import Clock
from engine.execution.fill_model import FillModel, LimitFillRule
from engine.model.fill import Fill, FillBasis, Liquidity
from engine.model.instrument import Instrument
from engine.model.market import Bar, BookSnapshot, TradeTick
from engine.model.order import Order, OrderSide, OrderType, TimeInForce

_EPS = 1e-12


class VenueListener(Protocol):
    """Receives what the venue reports; the order manager applies it to the orders."""

    def order_accepted(self, order: Order, latency_ns: int) -> None: ...
    def order_rejected(self, order: Order, reason: str) -> None: ...
    def order_triggered(self, order: Order) -> None: ...
    def order_filled(self, order: Order, fill: Fill) -> None: ...
    def order_canceled(self, order: Order, reason: str) -> None: ...


@dataclass(slots=True, eq=False)
class _Working:
    """The venue's own view of an order: what is left, and what it assumed at submission."""

    order: Order
    instrument: Instrument
    remaining: float
    mid_at_decision: float
    arrive_ns: int
    latency_ns: int = 0
    triggered: bool = False
    queue_ahead: float = 0.0
    fills: int = 0
    resting: bool = False


class FillSimulator:
    """Simulated venue: submit/cancel orders, feed it market data, it reports to the listener."""

    def __init__(self, clock: Clock, instruments: dict[str, Instrument], model: FillModel,
                 listener: VenueListener) -> None:
        self.clock = clock
        self.instruments = instruments
        self.model = model
        self.listener = listener
        self._books: dict[str, BookSnapshot] = {}
        self._consumed: dict[str, dict[float, float]] = {}
        self._last_price: dict[str, float] = {}
        self.in_flight: deque[_Working] = deque()  # on their way to the venue, in arrival order
        self._working: dict[str, list[_Working]] = {}
        self._by_id: dict[str, _Working] = {}

    # ---- orders -------------------------------------------------------------------------

    def submit(self, order: Order) -> None:
        """Validate against the instrument's rules, then let the order travel for latency_ns."""
        instrument = self.instruments.get(order.symbol)
        if instrument is None:
            self.listener.order_rejected(order, f"unknown symbol {order.symbol!r}")
            return
        reason = self._violation(order, instrument)
        if reason:
            self.listener.order_rejected(order, reason)
            return
        latency_ns = self.latency_of(order)
        working = _Working(order, instrument, order.qty, self._reference_price(order.symbol),
                           self.clock.now_ns() + latency_ns, latency_ns)
        self._by_id[order.client_id] = working
        if latency_ns == 0:
            self._arrive(working)
        elif not self.in_flight or self.in_flight[-1].arrive_ns <= working.arrive_ns:
            self.in_flight.append(working)  # with one latency for all, arrival times only grow
        else:
            at = len(self.in_flight)
            while at and self.in_flight[at - 1].arrive_ns > working.arrive_ns:
                at -= 1
            self.in_flight.insert(at, working)

    def latency_of(self, order: Order) -> int:
        """How long an order travels to the venue: the model's latency (a counterfactual replay of the twin gives an
        order the latency it had in paper)."""
        return self.model.latency_ns

    def cancel(self, client_id: str, reason: str = "canceled on request", report: bool = True) -> bool:
        """Cancel a working or in-flight order; False when the venue no longer has it.

        report=False: the caller takes the True as the confirmation, and no order_canceled follows.
        """
        working = self._by_id.get(client_id)
        if working is None:
            return False
        if working in self.in_flight:
            self.in_flight.remove(working)
        elif working.resting:
            self._working[working.order.symbol].remove(working)
        else:
            return False  # being matched right now (a fill's listener asked): what it leaves is closed by the venue
        del self._by_id[client_id]
        if report:
            self.listener.order_canceled(working.order, reason)
        return True

    def working_orders(self) -> list[Order]:
        return [w.order for w in self._by_id.values()]

    # ---- market data ----------------------------------------------------------------------

    def advance(self, ts: int) -> None:
        """Market time reaches ts: orders that arrived before it meet the market as it stood when they did."""
        in_flight = self.in_flight
        while in_flight and in_flight[0].arrive_ns < ts:
            self._arrive(in_flight.popleft())

    def on_book(self, book: BookSnapshot) -> None:
        self._books[book.symbol] = book
        self._consumed[book.symbol] = {}

    def on_trade(self, tick: TradeTick) -> None:
        self._last_price[tick.symbol] = tick.price
        working = self._working.get(tick.symbol)
        if working:
            self._match_trade(tick, working)

    def on_bar(self, bar: Bar) -> None:
        # bars cannot say what traded when inside them: an order that arrived during the bar (advance(bar.end)
        # delivered it) trades at its open
        working = self._working.get(bar.symbol)
        if working:
            self._match_bar(bar, working)
        self._last_price[bar.symbol] = bar.close

    # ---- internals ------------------------------------------------------------------------

    def _violation(self, order: Order, instrument: Instrument) -> str | None:
        limit_type = order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        stop_type = order.type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if limit_type and order.price is None:
            return f"{order.type.value} order needs a limit price"
        if stop_type:
            if order.stop_price is None:
                return f"{order.type.value} order needs a stop price"
            reason = instrument.violation(order.qty, order.stop_price, None)
            if reason:
                return f"stop {reason}"
        return instrument.violation(order.qty, order.price if limit_type else None,
                                    self._reference_price(order.symbol) or None)

    def _reference_price(self, symbol: str) -> float:
        book = self._books.get(symbol)
        if book is not None and book.bids and book.asks:
            return book.mid
        return self._last_price.get(symbol, 0.0)

    def _arrive(self, w: _Working) -> None:
        order = w.order
        self.listener.order_accepted(order, w.latency_ns)  # the latency the venue reports
        book = self._books.get(order.symbol)
        if order.type in (OrderType.STOP, OrderType.STOP_LIMIT) or book is None:
            self._rest(w, queue_ahead=0.0)  # stops wait for a trade; bar-only symbols wait for the next bar
            return
        self._execute(w, book, w.arrive_ns)

    def _execute(self, w: _Working, book: BookSnapshot, at: int) -> None:
        """Take what the book offers (up to the limit price) at market time `at`, then rest or cancel the rest."""
        order = w.order
        at = max(at, book.ts)
        limit = order.price if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
        if limit is None and not self.model.slippage and book.bids and book.asks:
            touch = book.asks if order.side is OrderSide.BUY else book.bids
            self._fill(w, w.remaining, book.mid, Liquidity.TAKER, FillBasis.MID, touch[0][1], at)
            return
        if order.tif is TimeInForce.FOK:
            available = self._available(w, book, limit)
            if available + _EPS < w.remaining:
                self._close(w, f"FOK: only {available:g} of {w.remaining:g} available"
                               + (f" at {limit:g} or better" if limit is not None else ""))
                return
        self._take(w, book, limit, at)
        if w.remaining <= _EPS:
            return
        if limit is None:
            self._close(w, f"book exhausted: {w.remaining:g} of {order.qty:g} unfilled")
        elif order.tif is not TimeInForce.GTC:
            self._close(w, f"{order.tif.value}: {w.remaining:g} of {order.qty:g} unfilled at {limit:g}")
        else:
            same_side = book.bids if order.side is OrderSide.BUY else book.asks
            ahead = next((size for price, size in same_side if price == limit), 0.0)
            self._rest(w, queue_ahead=ahead)

    def _levels(self, w: _Working, book: BookSnapshot, limit: float | None) -> Iterator[tuple[float, float]]:
        """Opposite-side levels the order may take, with the quantity still available at each."""
        buy = w.order.side is OrderSide.BUY
        consumed = self._consumed.setdefault(book.symbol, {})
        for price, size in (book.asks if buy else book.bids):
            if limit is not None and (price > limit if buy else price < limit):
                return
            available = size - consumed.get(price, 0.0)
            if available > _EPS:
                yield price, available

    def _available(self, w: _Working, book: BookSnapshot, limit: float | None) -> float:
        return sum(w.instrument.floor_qty(a) for _, a in self._levels(w, book, limit))

    def _take(self, w: _Working, book: BookSnapshot, limit: float | None, at: int) -> None:
        consumed = self._consumed.setdefault(book.symbol, {})
        for price, available in list(self._levels(w, book, limit)):
            qty = w.instrument.floor_qty(min(available, w.remaining))
            if qty <= 0:
                continue
            consumed[price] = consumed.get(price, 0.0) + qty
            self._fill(w, qty, price, Liquidity.TAKER, FillBasis.BOOK, available, at)
            if w.remaining <= _EPS:
                return

    def _rest(self, w: _Working, queue_ahead: float) -> None:
        w.queue_ahead = queue_ahead
        w.resting = True
        self._working.setdefault(w.order.symbol, []).append(w)

    def _close(self, w: _Working, reason: str) -> None:
        """The venue is done with an order it did not fully fill."""
        self._by_id.pop(w.order.client_id, None)
        if w.resting:
            self._working[w.order.symbol].remove(w)
        self.listener.order_canceled(w.order, reason)

    def _fill(self, w: _Working, qty: float, price: float, liquidity: Liquidity, basis: FillBasis,
              depth: float, ts: int) -> None:
        order = w.order
        instrument = w.instrument
        w.remaining = instrument.floor_qty(w.remaining - qty) if w.remaining - qty > _EPS else 0.0
        w.fills += 1
        mid = w.mid_at_decision
        fee_rate = instrument.maker_fee if liquidity is Liquidity.MAKER else instrument.taker_fee
        slippage_bps = (price - mid) / mid * 1e4 * order.side if mid else 0.0
        fill = Fill(f"{order.client_id}-F{w.fills}", order.client_id, order.strategy, order.symbol,
                    order.side, qty, price, qty * price * fee_rate, liquidity, ts, basis, depth,
                    w.latency_ns, mid, slippage_bps)
        if w.remaining <= 0.0:
            self._by_id.pop(order.client_id, None)
            if w.resting:
                self._working[order.symbol].remove(w)
        self.listener.order_filled(order, fill)

    def _match_trade(self, tick: TradeTick, working: list[_Working]) -> None:
        left = tick.size
        for w in list(working):  # every order sees the trade: stops trigger on price even when its size is used up
            order = w.order
            buy = order.side is OrderSide.BUY
            if order.type in (OrderType.STOP, OrderType.STOP_LIMIT) and not w.triggered:
                stop = order.stop_price
                assert stop is not None  # submit() refused a stop without one
                if (tick.price >= stop) if buy else (tick.price <= stop):
                    w.triggered = True
                    self.listener.order_triggered(order)
                    working.remove(w)
                    w.resting = False
                    book = self._books.get(order.symbol)
                    if book is not None:
                        self._execute(w, book, tick.ts)
                    else:
                        self._rest(w, 0.0)
                continue
            match = self._against_trade(w, tick, left)
            if match is None:
                if order.tif is not TimeInForce.GTC:
                    self._close(w, f"{order.tif.value}: the next trade ({tick.price:g}) did not reach {order.price:g}")
                continue
            left, price, liquidity = match  # size ahead of us in the queue is gone for everyone behind
            if order.tif is TimeInForce.FOK and left + _EPS < w.remaining:
                self._close(w, f"FOK: the next trade offered {left:g} of {w.remaining:g}")
                continue
            qty = w.instrument.floor_qty(min(left, w.remaining))
            if qty > 0:
                left -= qty
                basis = FillBasis.TOUCH if tick.price == order.price else FillBasis.TRADE
                self._fill(w, qty, price, liquidity, basis, tick.size, tick.ts)
            if order.tif is not TimeInForce.GTC and w.remaining > _EPS:
                # parked for want of a book, an IOC gets one trade to match against, not a resting life
                self._close(w, f"IOC: {w.remaining:g} of {order.qty:g} unfilled by the next trade")

    def _against_trade(self, w: _Working, tick: TradeTick, left: float) -> tuple[float, float, Liquidity] | None:
        """What of a printed trade (`left` of it unclaimed) this order can take and at what price; None if none."""
        order = w.order
        if order.type in (OrderType.MARKET, OrderType.STOP):
            return left, tick.price, Liquidity.TAKER  # no book to walk: take from the trade
        limit = order.price
        assert limit is not None  # submit() refused a limit without one
        buy = order.side is OrderSide.BUY
        if tick.price < limit if buy else tick.price > limit:
            return left, limit, Liquidity.MAKER
        if tick.price == limit:
            rule = self.model.limit_fill
            if rule is LimitFillRule.TOUCH:
                return left, limit, Liquidity.MAKER
            if rule is LimitFillRule.QUEUE:
                used = min(w.queue_ahead, left)
                w.queue_ahead -= used
                return left - used, limit, Liquidity.MAKER
        return None

    def _match_bar(self, bar: Bar, working: list[_Working]) -> None:
        for w in list(working):
            if w.arrive_ns >= bar.end:
                continue
            at = max(bar.ts, w.arrive_ns)  # the open's price, but never stamped before the order arrived
            order = w.order
            buy = order.side is OrderSide.BUY
            if order.type in (OrderType.STOP, OrderType.STOP_LIMIT) and not w.triggered:
                stop = order.stop_price
                assert stop is not None  # submit() refused a stop without one
                if not ((bar.high >= stop) if buy else (bar.low <= stop)):
                    continue
                w.triggered = True
                self.listener.order_triggered(order)
                if order.type is OrderType.STOP:
                    # a gap through the stop fills at the open, otherwise at the stop
                    price = max(bar.open, stop) if buy else min(bar.open, stop)
                    self._fill(w, w.remaining, self._slipped(w, price), Liquidity.TAKER,
                               FillBasis.BAR_RANGE, bar.volume, at)
                    continue
            if order.type is OrderType.MARKET or (order.type is OrderType.STOP and w.triggered):
                self._fill(w, w.remaining, self._slipped(w, bar.open), Liquidity.TAKER, FillBasis.BAR_OPEN,
                           bar.volume, at)
                continue
            limit = order.price
            assert limit is not None  # market and stop orders were handled above
            if (bar.open <= limit) if buy else (bar.open >= limit):
                self._fill(w, w.remaining, bar.open, Liquidity.TAKER, FillBasis.BAR_OPEN, bar.volume, at)
            elif order.tif is not TimeInForce.GTC:
                self._close(w, f"{order.tif.value}: not marketable at the open {bar.open:g} (limit {limit:g})")
            elif (bar.low < limit) if buy else (bar.high > limit):
                # traded through the resting price: fill at it, at most the bar's volume
                qty = w.instrument.floor_qty(min(w.remaining, bar.volume))
                if qty > 0:
                    self._fill(w, qty, limit, Liquidity.MAKER, FillBasis.BAR_RANGE, bar.volume, at)

    def _slipped(self, w: _Working, price: float) -> float:
        bps = self.model.bar_slippage_bps
        if not bps:
            return price
        return w.instrument.round_price(price * (1.0 + w.order.side * bps / 1e4))
