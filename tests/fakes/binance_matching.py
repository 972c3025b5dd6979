"""The fake Binance's exchange state: books, orders, fills, balances and public trades, with no I/O.

Every mutation appends ready-built wire events to `outbox`, in the order Binance would send them; the server in
binance.py drains it to the websocket clients. Quantities are Decimals so fills and balances add up exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

Number = str | int | float | Decimal
ZERO = Decimal(0)
EIGHT_PLACES = Decimal("0.00000001")
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
INTERVAL_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def dec(value: Number) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def fmt(value: Decimal) -> str:
    # Binance sends every quantity and price as a string with eight decimals
    return f"{value:.8f}"


class Reject(Exception):
    """A Binance error reply: the HTTP status plus the {"code", "msg"} body."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status, self.code, self.msg = status, code, msg

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


@dataclass(frozen=True)
class SymbolSpec:
    """One spot symbol as exchangeInfo describes it."""

    base: str
    quote: str
    tick: str = "0.01"
    step: str = "0.00001"
    min_qty: str = "0.00001"
    max_qty: str = "9000"
    min_notional: str = "5"
    # NOTIONAL replaced MIN_NOTIONAL on spot in 2023; ccxt reads either
    notional_filter: str = "NOTIONAL"

    @property
    def symbol(self) -> str:
        return self.base + self.quote

    def exchange_info(self) -> dict[str, Any]:
        notional: dict[str, Any] = {"filterType": self.notional_filter, "minNotional": self.min_notional}
        if self.notional_filter == "NOTIONAL":
            notional |= {"applyMinToMarket": True, "maxNotional": "9000000.00000000", "applyMaxToMarket": False,
                         "avgPriceMins": 5}
        else:
            notional |= {"applyToMarket": True, "avgPriceMins": 5}
        return {
            "symbol": self.symbol, "status": "TRADING",
            "baseAsset": self.base, "baseAssetPrecision": 8, "quoteAsset": self.quote, "quotePrecision": 8,
            "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False, "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False, "cancelReplaceAllowed": False, "amendAllowed": False,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": self.tick, "maxPrice": "1000000.00000000",
                 "tickSize": self.tick},
                {"filterType": "LOT_SIZE", "minQty": self.min_qty, "maxQty": self.max_qty, "stepSize": self.step},
                notional,
            ],
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def floor_step(self, qty: Decimal) -> Decimal:
        step = dec(self.step)
        return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step

    def check_price(self, price: Decimal) -> None:
        if price <= 0 or price % dec(self.tick) != 0:
            raise Reject(400, -1013, "Filter failure: PRICE_FILTER")

    def check_qty(self, qty: Decimal) -> None:
        if not dec(self.min_qty) <= qty <= dec(self.max_qty) or (qty - dec(self.min_qty)) % dec(self.step) != 0:
            raise Reject(400, -1013, "Filter failure: LOT_SIZE")

    def check_notional(self, notional: Decimal) -> None:
        if notional < dec(self.min_notional):
            raise Reject(400, -1013, f"Filter failure: {self.notional_filter}")


@dataclass
class Balance:
    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass
class Book:
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    # Binance's lastUpdateId; any start value works, a large one catches clients that assume it starts at 0
    update_id: int = 1_000_000

    def sorted_side(self, side: str) -> list[tuple[Decimal, Decimal]]:
        levels = self.bids if side == "b" else self.asks
        return sorted(levels.items(), reverse=side == "b")


@dataclass
class Order:
    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: Decimal
    price: Decimal
    quote_qty: Decimal
    created: int
    updated: int
    status: str = "NEW"
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed

    def status_json(self) -> dict[str, Any]:
        """The order as GET /api/v3/order, openOrders and allOrders return it."""
        return {
            "symbol": self.symbol, "orderId": self.order_id, "orderListId": -1, "clientOrderId": self.client_id,
            "price": fmt(self.price), "origQty": fmt(self.qty), "executedQty": fmt(self.executed),
            "cummulativeQuoteQty": fmt(self.cum_quote), "status": self.status, "timeInForce": self.tif,
            "type": self.type, "side": self.side, "stopPrice": fmt(ZERO), "icebergQty": fmt(ZERO),
            "time": self.created, "updateTime": self.updated, "isWorking": True, "workingTime": self.created,
            "origQuoteOrderQty": fmt(self.quote_qty), "selfTradePreventionMode": "NONE",
        }


@dataclass(frozen=True)
class Fill:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    maker: bool

    def my_trade_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "id": self.trade_id, "orderId": self.order_id, "orderListId": -1,
            "price": fmt(self.price), "qty": fmt(self.qty), "quoteQty": fmt(self.price * self.qty),
            "commission": fmt(self.commission), "commissionAsset": self.commission_asset, "time": self.time,
            "isBuyer": self.side == "BUY", "isMaker": self.maker, "isBestMatch": True,
        }


@dataclass(frozen=True)
class Print:
    """A public trade on the tape."""

    trade_id: int
    price: Decimal
    qty: Decimal
    time: int
    buyer_maker: bool


@dataclass(frozen=True)
class Event:
    """A websocket push: kind is "depth", "trade" (one public print, at prints[symbol][index]) or "user"."""

    kind: str
    symbol: str
    payload: dict[str, Any]
    index: int = -1


class Exchange:
    """Binance spot matching for one account against a book the test controls."""

    def __init__(self, specs: Iterable[SymbolSpec], balances: dict[str, Number], fee_rate: Number,
                 clock: Callable[[], int]) -> None:
        self.specs = {spec.symbol: spec for spec in specs}
        self.books = {symbol: Book() for symbol in self.specs}
        self.prints: dict[str, list[Print]] = {symbol: [] for symbol in self.specs}
        self.balances = {asset: Balance(dec(free)) for asset, free in balances.items()}
        self.orders: dict[int, Order] = {}
        self.fills: list[Fill] = []
        self.outbox: list[Event] = []
        self.fee_rate = dec(fee_rate)
        self.clock = clock
        # order id -> quantity (None: all of it) that fills in the instant before that order's next cancel
        self.cancel_races: dict[int, Decimal | None] = {}
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._print_ids = itertools.count(1)
        self._pending_depth: dict[str, dict[str, dict[Decimal, Decimal]]] = {}

    # ---------------------------------------------------------------- lookups

    def spec(self, symbol: str) -> SymbolSpec:
        spec = self.specs.get(symbol.replace("/", ""))
        if spec is None:
            raise Reject(400, -1121, "Invalid symbol.")
        return spec

    def balance(self, asset: str) -> Balance:
        return self.balances.setdefault(asset, Balance())

    def find(self, symbol: str, order_id: str | None = None, client_id: str | None = None) -> Order:
        """The order by id, or the latest with that client id; Binance's -2013 when there is none."""
        spec = self.spec(symbol)
        if order_id is None and client_id is None:
            raise Reject(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        for order in reversed(self.orders.values()):
            if order.symbol == spec.symbol and (str(order.order_id) == order_id or order.client_id == client_id):
                return order
        raise Reject(400, -2013, "Order does not exist.")

    def resolve(self, ref: int | str) -> Order:
        """A test's handle on an order: the order id, or the latest order with that client id."""
        for order in reversed(self.orders.values()):
            if order.order_id == ref or order.client_id == ref:
                return order
        raise KeyError(f"no order {ref!r}")

    # ---------------------------------------------------------------- the market side, moved by the test

    def set_levels(self, symbol: str, side: str, levels: Iterable[tuple[Number, Number]]) -> None:
        """Set price levels on one side ("b" or "a"); a zero quantity removes the level."""
        key = self.spec(symbol).symbol
        current = self.books[key].bids if side == "b" else self.books[key].asks
        changes = self._pending_depth.setdefault(key, {"b": {}, "a": {}})[side]
        for price, qty in levels:
            p, q = dec(price), dec(qty)
            if q == 0:
                current.pop(p, None)
            else:
                current[p] = q
            changes[p] = q

    def commit_depth(self, symbol: str, gap: int = 0) -> None:
        """Publish the pending level changes as one depthUpdate; gap skips that many update ids first."""
        symbol = self.spec(symbol).symbol
        changes = self._pending_depth.pop(symbol, None)
        if not changes or not (changes["b"] or changes["a"]):
            return
        book = self.books[symbol]
        first = book.update_id + 1 + gap
        book.update_id = first + len(changes["b"]) + len(changes["a"]) - 1
        self.outbox.append(Event("depth", symbol, {
            "e": "depthUpdate", "E": self.clock(), "s": symbol, "U": first, "u": book.update_id,
            "b": [[fmt(p), fmt(q)] for p, q in changes["b"].items()],
            "a": [[fmt(p), fmt(q)] for p, q in changes["a"].items()],
        }))

    def replace_book(self, symbol: str, bids: Iterable[tuple[Number, Number]],
                     asks: Iterable[tuple[Number, Number]]) -> None:
        book = self.books[self.spec(symbol).symbol]
        new_bids = {dec(p): dec(q) for p, q in bids}
        new_asks = {dec(p): dec(q) for p, q in asks}
        self.set_levels(symbol, "b", [(p, 0) for p in book.bids if p not in new_bids] + list(new_bids.items()))
        self.set_levels(symbol, "a", [(p, 0) for p in book.asks if p not in new_asks] + list(new_asks.items()))

    def cross_resting(self, symbol: str) -> None:
        """Resting orders the book has moved through fill at their own price against the crossing levels."""
        book = self.books[self.spec(symbol).symbol]
        for order in self._resting(symbol):
            opposite = "a" if order.side == "BUY" else "b"
            for price, qty in book.sorted_side(opposite):
                if not order.is_open or (price > order.price if order.side == "BUY" else price < order.price):
                    break
                take = min(qty, order.remaining)
                self.set_levels(symbol, opposite, [(price, qty - take)])
                self._fill(order, order.price, take, maker=True)

    def trade(self, symbol: str, price: Number, qty: Number, buyer_maker: bool, time: int | None) -> None:
        """A public trade prints; resting orders at or through its price fill at their own price, up to qty."""
        p, left = dec(price), dec(qty)
        self._print(symbol, p, left, buyer_maker, time)
        for order in self._resting(symbol):
            if left <= 0:
                break
            if (p <= order.price) if order.side == "BUY" else (p >= order.price):
                take = min(left, order.remaining)
                self._fill(order, order.price, take, maker=True, print_it=False)
                left -= take

    def fill(self, order: Order, qty: Number | None, price: Number | None) -> None:
        """Fill a resting order directly (qty defaults to what is left, price to its limit)."""
        if not order.is_open:
            raise ValueError(f"order {order.order_id} is {order.status}, not open")
        take = order.remaining if qty is None else min(dec(qty), order.remaining)
        self._fill(order, order.price if price is None else dec(price), take, maker=True)

    # ---------------------------------------------------------------- the account side, driven by the client

    def place(self, params: dict[str, str], test_only: bool = False) -> Order | None:
        """POST /api/v3/order: validate everything first, then book the order, take liquidity, rest or expire."""
        spec = self.spec(params.get("symbol", ""))
        side, kind = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL"):
            raise _missing("side")
        if kind not in ("MARKET", "LIMIT", "LIMIT_MAKER"):
            raise Reject(400, -1116, "Invalid orderType.")
        qty = _optional_dec(params, "quantity")
        quote_qty = _optional_dec(params, "quoteOrderQty")
        price = _optional_dec(params, "price")
        limit: Decimal | None = None
        if kind == "MARKET":
            if (qty is None) == (quote_qty is None):
                raise Reject(400, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
            tif = "GTC"
        else:
            for name, value in (("price", price), ("quantity", qty)):
                if value is None:
                    raise _missing(name)
            assert price is not None
            spec.check_price(price)
            limit = price
            tif = params.get("timeInForce", "GTC" if kind == "LIMIT_MAKER" else "")
            if tif not in ("GTC", "IOC", "FOK"):
                raise _missing("timeInForce")
        if qty is not None:
            spec.check_qty(qty)
        client_id = params.get("newClientOrderId") or f"fake-{len(self.orders) + 1}"
        # Binance's rule: a client order id must be unique among *open* orders; a filled one's id may be reused
        if any(o.client_id == client_id and o.is_open for o in self.orders.values()):
            raise Reject(400, -2010, "Duplicate order sent.")

        plan = self._plan(spec, side, qty, quote_qty, limit)
        plan_qty = sum((q for _, q in plan), ZERO)
        plan_cost = sum((p * q for p, q in plan), ZERO)
        order_qty = qty if qty is not None else plan_qty
        if kind == "LIMIT_MAKER" and plan:
            raise Reject(400, -2010, "Order would immediately match and take.")
        if tif == "FOK" and plan_qty < order_qty:
            plan = []
        if kind == "MARKET":
            spec.check_notional(quote_qty if quote_qty is not None else plan_cost)
        else:
            assert price is not None
            spec.check_notional(price * order_qty)
        if side == "BUY":
            need, asset = (plan_cost if kind == "MARKET" else order_qty * (price or ZERO)), spec.quote
        else:
            need, asset = order_qty, spec.base
        if need > self.balance(asset).free:
            raise Reject(400, -2010, "Account has insufficient balance for requested action.")
        if test_only:
            return None

        now = self.clock()
        order = Order(next(self._order_ids), client_id, spec.symbol, side, kind, tif, order_qty,
                      price or ZERO, quote_qty or ZERO, now, now)
        self.orders[order.order_id] = order
        self._report(order, "NEW")
        opposite = "a" if side == "BUY" else "b"
        for level_price, take in plan:
            left = self._level(spec.symbol, opposite, level_price) - take
            self.set_levels(spec.symbol, opposite, [(level_price, left)])
            self._fill(order, level_price, take, maker=False)
        if order.remaining > 0:
            if kind == "MARKET" or tif != "GTC":
                order.status = "EXPIRED"
                self._report(order, "EXPIRED")
            else:
                self._lock(order, order.remaining)
        self.commit_depth(spec.symbol)
        return order

    def cancel(self, order: Order) -> Order:
        """DELETE /api/v3/order; a cancel that loses the race to a fill is Binance's -2011."""
        if order.order_id in self.cancel_races:
            race_qty = self.cancel_races.pop(order.order_id)
            if order.is_open:
                self.fill(order, race_qty, None)
        if not order.is_open:
            raise Reject(400, -2011, "Unknown order sent.")
        self._lock(order, -order.remaining)
        order.status, order.updated = "CANCELED", self.clock()
        self._report(order, "CANCELED")
        return order

    def open_orders(self, symbol: str | None) -> list[Order]:
        wanted = self.spec(symbol).symbol if symbol else None
        return [o for o in self.orders.values() if o.is_open and wanted in (None, o.symbol)]

    # ---------------------------------------------------------------- market data

    def klines(self, symbol: str, interval: str, start: int | None, end: int | None, limit: int,
               upto: int | None = None) -> list[list[Any]]:
        """Candles built from the public prints (the first `upto` of them), as GET /api/v3/klines returns them."""
        width = interval_ms(interval)
        buckets: dict[int, list[Print]] = {}
        for pr in self.prints[self.spec(symbol).symbol][:upto]:
            if (start is None or pr.time >= start) and (end is None or pr.time <= end):
                buckets.setdefault(pr.time - pr.time % width, []).append(pr)
        rows = []
        for open_time, prs in sorted(buckets.items()):
            taker_buys = [pr for pr in prs if not pr.buyer_maker]
            rows.append([
                open_time, fmt(prs[0].price), fmt(max(pr.price for pr in prs)), fmt(min(pr.price for pr in prs)),
                fmt(prs[-1].price), fmt(sum((pr.qty for pr in prs), ZERO)), open_time + width - 1,
                fmt(sum((pr.qty * pr.price for pr in prs), ZERO)), len(prs),
                fmt(sum((pr.qty for pr in taker_buys), ZERO)),
                fmt(sum((pr.qty * pr.price for pr in taker_buys), ZERO)), "0",
            ])
        return rows[-limit:]

    def ticker_24h(self, symbol: str) -> dict[str, Any]:
        spec = self.spec(symbol)
        now = self.clock()
        prs = [pr for pr in self.prints[spec.symbol] if pr.time > now - 86_400_000]
        book = self.books[spec.symbol]
        bid = book.sorted_side("b")[:1] or [(ZERO, ZERO)]
        ask = book.sorted_side("a")[:1] or [(ZERO, ZERO)]
        first = prs[0].price if prs else ZERO
        last = prs[-1].price if prs else ZERO
        volume = sum((pr.qty for pr in prs), ZERO)
        quote_volume = sum((pr.qty * pr.price for pr in prs), ZERO)
        return {
            "symbol": spec.symbol, "priceChange": fmt(last - first),
            "priceChangePercent": f"{(last - first) / first * 100 if first else ZERO:.3f}",
            "weightedAvgPrice": fmt(quote_volume / volume if volume else ZERO), "prevClosePrice": fmt(first),
            "lastPrice": fmt(last), "lastQty": fmt(prs[-1].qty if prs else ZERO),
            "bidPrice": fmt(bid[0][0]), "bidQty": fmt(bid[0][1]), "askPrice": fmt(ask[0][0]), "askQty": fmt(ask[0][1]),
            "openPrice": fmt(first), "highPrice": fmt(max((pr.price for pr in prs), default=ZERO)),
            "lowPrice": fmt(min((pr.price for pr in prs), default=ZERO)), "volume": fmt(volume),
            "quoteVolume": fmt(quote_volume), "openTime": now - 86_400_000, "closeTime": now,
            "firstId": prs[0].trade_id if prs else -1, "lastId": prs[-1].trade_id if prs else -1, "count": len(prs),
        }

    # ---------------------------------------------------------------- internals

    def _resting(self, symbol: str) -> list[Order]:
        """Open orders of one symbol in matching priority: best price first, then time."""
        orders = self.open_orders(symbol)
        return sorted(orders, key=lambda o: (-o.price if o.side == "BUY" else o.price, o.order_id))

    def _level(self, symbol: str, side: str, price: Decimal) -> Decimal:
        book = self.books[symbol]
        return (book.bids if side == "b" else book.asks).get(price, ZERO)

    def _plan(self, spec: SymbolSpec, side: str, qty: Decimal | None, quote_qty: Decimal | None,
              limit: Decimal | None) -> list[tuple[Decimal, Decimal]]:
        """The levels a taker order would consume, walking the opposite side of the book."""
        plan: list[tuple[Decimal, Decimal]] = []
        left_qty, left_quote = qty, quote_qty
        for price, available in self.books[spec.symbol].sorted_side("a" if side == "BUY" else "b"):
            if limit is not None and (price > limit if side == "BUY" else price < limit):
                break
            if left_qty is not None:
                take = min(available, left_qty)
            else:
                assert left_quote is not None
                take = min(available, spec.floor_step(left_quote / price))
            if take <= 0:
                break
            plan.append((price, take))
            if left_qty is not None:
                left_qty -= take
            else:
                assert left_quote is not None
                left_quote -= take * price
        return plan

    def _lock(self, order: Order, qty: Decimal) -> None:
        """Move funds for qty of a resting order from free to locked (a negative qty releases them)."""
        spec = self.specs[order.symbol]
        balance, amount = (self.balance(spec.quote), qty * order.price) if order.side == "BUY" else \
            (self.balance(spec.base), qty)
        balance.free -= amount
        balance.locked += amount

    def _fill(self, order: Order, price: Decimal, qty: Decimal, maker: bool, print_it: bool = True) -> None:
        spec = self.specs[order.symbol]
        base, quote = self.balance(spec.base), self.balance(spec.quote)
        notional = price * qty
        if order.side == "BUY":
            commission, asset = (qty * self.fee_rate).quantize(EIGHT_PLACES), spec.base
            if maker:
                quote.locked -= qty * order.price
                quote.free += qty * order.price - notional
            else:
                quote.free -= notional
            base.free += qty - commission
        else:
            commission, asset = (notional * self.fee_rate).quantize(EIGHT_PLACES), spec.quote
            if maker:
                base.locked -= qty
            else:
                base.free -= qty
            quote.free += notional - commission
        now = self.clock()
        order.executed += qty
        order.cum_quote += notional
        order.updated = now
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        fill = Fill(next(self._trade_ids), order.order_id, order.symbol, order.side, price, qty, commission, asset,
                    now, maker)
        self.fills.append(fill)
        self._report(order, "TRADE", fill)
        if print_it:
            self._print(order.symbol, price, qty, buyer_maker=(order.side == "BUY") == maker, time=now)

    def _print(self, symbol: str, price: Decimal, qty: Decimal, buyer_maker: bool, time: int | None) -> None:
        symbol = self.spec(symbol).symbol
        tape = self.prints[symbol]
        pr = Print(next(self._print_ids), price, qty, self.clock() if time is None else time, buyer_maker)
        tape.append(pr)
        self.outbox.append(Event("trade", symbol, {
            "e": "trade", "E": self.clock(), "s": symbol, "t": pr.trade_id, "p": fmt(price), "q": fmt(qty),
            "T": pr.time, "m": buyer_maker, "M": True,
        }, index=len(tape) - 1))

    def _report(self, order: Order, execution: str, fill: Fill | None = None) -> None:
        """The user-data executionReport for one change of an order."""
        self.outbox.append(Event("user", order.symbol, {
            "e": "executionReport", "E": self.clock(), "s": order.symbol, "c": order.client_id, "S": order.side,
            "o": order.type, "f": order.tif, "q": fmt(order.qty), "p": fmt(order.price), "P": fmt(ZERO),
            "F": fmt(ZERO), "g": -1, "C": "", "x": execution, "X": order.status, "r": "NONE", "i": order.order_id,
            "l": fmt(fill.qty if fill else ZERO), "z": fmt(order.executed), "L": fmt(fill.price if fill else ZERO),
            "n": fmt(fill.commission) if fill else "0", "N": fill.commission_asset if fill else None,
            "T": fill.time if fill else order.updated, "t": fill.trade_id if fill else -1, "I": 0,
            "w": order.is_open, "m": fill.maker if fill else False, "M": False, "O": order.created,
            "Z": fmt(order.cum_quote), "Y": fmt(fill.price * fill.qty if fill else ZERO),
            "Q": fmt(order.quote_qty), "W": order.created, "V": "NONE",
        }))


def interval_ms(interval: str) -> int:
    unit = INTERVAL_UNITS_MS.get(interval[-1:])
    if unit is None or not interval[:-1].isdigit():
        raise Reject(400, -1120, "Invalid interval.")
    return int(interval[:-1]) * unit


def _missing(name: str) -> Reject:
    return Reject(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _optional_dec(params: dict[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return Decimal(raw)
    except ArithmeticError:
        raise Reject(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})"
                     "(\\.[0-9]{1,20})?$'.") from None
