"""A loopback Binance spot exchange for driving the real ccxt clients (ccxt.async_support and ccxt.pro) in tests.

    async with FakeBinance(symbols=[SymbolSpec("BTC", "USDT")]) as fake:
        ex = ccxt.pro.binance({"apiKey": fake.api_key, "secret": fake.secret, "options": spot_options(),
                               "enableRateLimit": False})
        point_at(ex, fake)

It serves on 127.0.0.1 and an OS-chosen port, and speaks:
- REST /api/v3: ping, time, exchangeInfo, depth, trades, aggTrades, klines, ticker/24hr, and the signed account,
  order (POST, GET, DELETE), order/test, openOrders, allOrders and myTrades, each HMAC-SHA256 checked;
- the market-stream websocket (SUBSCRIBE to <symbol>@depth[@100ms], @trade, @aggTrade, @kline_<interval>) under
  /stream/ws/..., the path ccxt.pro needs to treat the stream as spot;
- the WS-API user-data stream (userDataStream.subscribe.signature, then executionReport events) that ccxt.pro
  4.5 uses for watch_orders / watch_my_trades on spot.
Test controls are methods of FakeBinance; every request is recorded in `calls`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import WSMsgType, web

from tests.fakes.binance_matching import Event, Exchange, Number, Order, Reject, SymbolSpec, dec, fmt, interval_ms

LOOPBACK = "127.0.0.1"
MARKET_WS_PATH = "/stream/ws"
USER_WS_PATH = "/ws-api/ws-api/v3"
DEFAULT_SYMBOLS = (SymbolSpec("BTC", "USDT"), SymbolSpec("ETH", "USDT", step="0.0001", min_qty="0.0001"))
Handler = Callable[[dict[str, str]], Any]


def spot_options() -> dict[str, Any]:
    """ccxt binance options under which load_markets calls only GET /api/v3/exchangeInfo, even with keys set.

    Without them it also fetches the futures exchangeInfo (fapi, dapi), the signed sapi currency list and the sapi
    margin pair lists. A fresh dict each call, since ccxt keeps and may change what it is given.
    """
    return {"fetchCurrencies": False, "fetchMargins": False, "fetchMarkets": {"types": ["spot"]}}


def point_at(exchange: Any, fake: FakeBinance) -> None:
    """Rewrite every API base URL of a ccxt binance instance to the fake, keeping each URL's path.

    HTTP entries keep their path (/api/v3, /sapi/v1, /fapi/v1 ...), so a call nobody planned for reaches the fake
    (logged, answered 404) instead of the internet. Websocket entries become /<first label of the host>/<path>:
    wss://stream.binance.com:9443/ws -> ws://127.0.0.1:PORT/stream/ws, which keeps the '/stream' that ccxt.pro
    looks for in the URL to tell spot from futures streams, and keeps spot, futures and WS-API apart.
    The sandbox ('test') and demo sets are rewritten too, so set_sandbox_mode before or after this stays local.
    """
    for key in ("api", "test", "demo", "apiBackup"):
        if key in exchange.urls:
            exchange.urls[key] = _rewrite(exchange.urls[key], fake)


def api_urls(exchange: Any) -> list[str]:
    """Every API base URL the instance holds (what point_at rewrites)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, str):
            found.append(value)

    for key in ("api", "test", "demo", "apiBackup"):
        walk(exchange.urls.get(key))
    return found


def _rewrite(value: Any, fake: FakeBinance) -> Any:
    if isinstance(value, dict):
        return {key: _rewrite(item, fake) for key, item in value.items()}
    if not isinstance(value, str):
        return value
    parts = urlsplit(value)
    if parts.scheme in ("http", "https"):
        return fake.http_url + parts.path
    if parts.scheme in ("ws", "wss"):
        return f"{fake.ws_url}/{(parts.hostname or '').split('.')[0]}{parts.path}"
    return value


@dataclass(frozen=True)
class Call:
    """One request the fake received: an HTTP verb and path; "WS" and the path for a websocket connection; the
    JSON method (SUBSCRIBE, userDataStream.subscribe.signature ...) and the path for a websocket request."""

    method: str
    path: str
    signed: bool
    params: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    request: web.Request
    streams: set[str] = field(default_factory=set)
    subscription_id: int | None = None


class FakeBinance:
    """The fake exchange: an aiohttp app on 127.0.0.1, port 0, plus the controls a test moves it with."""

    def __init__(self, symbols: Iterable[SymbolSpec] = DEFAULT_SYMBOLS,
                 balances: dict[str, Number] | None = None, *, api_key: str = "fake-key",
                 secret: str = "fake-secret", fee_rate: Number = "0.001") -> None:
        self.api_key, self.secret = api_key, secret
        self.exchange = Exchange(symbols, balances if balances is not None else {"USDT": "100000", "BTC": "1"},
                                 fee_rate, self.now)
        self.calls: list[Call] = []
        # added to the fake's clock: more than recvWindow ahead, or 1 s behind, the client's gets -1021
        self.time_offset_ms = 0
        self._failures: list[tuple[int, int]] = []
        self._silenced: set[str] = set()
        self._conns: set[_Conn] = set()
        self._subscription_ids = 0
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._routes: dict[tuple[str, str], tuple[bool, Handler]] = {
            ("GET", "/api/v3/ping"): (False, lambda p: {}),
            ("GET", "/api/v3/time"): (False, lambda p: {"serverTime": self.now()}),
            ("GET", "/api/v3/exchangeInfo"): (False, self._exchange_info),
            ("GET", "/api/v3/depth"): (False, self._depth),
            ("GET", "/api/v3/trades"): (False, self._trades),
            ("GET", "/api/v3/aggTrades"): (False, self._agg_trades),
            ("GET", "/api/v3/klines"): (False, self._klines),
            ("GET", "/api/v3/ticker/24hr"): (False, self._ticker),
            ("GET", "/api/v3/account"): (True, self._account),
            ("POST", "/api/v3/order"): (True, self._new_order),
            ("POST", "/api/v3/order/test"): (True, self._test_order),
            ("GET", "/api/v3/order"): (True, self._get_order),
            ("DELETE", "/api/v3/order"): (True, self._cancel_order),
            ("GET", "/api/v3/openOrders"): (True, self._open_orders),
            ("GET", "/api/v3/allOrders"): (True, self._all_orders),
            ("GET", "/api/v3/myTrades"): (True, self._my_trades),
        }

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> FakeBinance:
        app = web.Application()
        app.router.add_get(MARKET_WS_PATH + "/{tail:.*}", self._market_ws)
        app.router.add_get(USER_WS_PATH, self._user_ws)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, 0).start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        await self.disconnect()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBinance:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{LOOPBACK}:{self._port}"

    def now(self) -> int:
        return int(time.time() * 1000) + self.time_offset_ms

    # ---------------------------------------------------------------- test controls

    async def set_book(self, symbol: str, bids: Iterable[tuple[Number, Number]],
                       asks: Iterable[tuple[Number, Number]], gap: int = 0) -> None:
        """Replace the whole book; subscribers get the difference as one depthUpdate (gap: update ids skipped)."""
        self.exchange.replace_book(symbol, bids, asks)
        await self._after_book_change(symbol, gap)

    async def update_book(self, symbol: str, bids: Iterable[tuple[Number, Number]] = (),
                          asks: Iterable[tuple[Number, Number]] = (), gap: int = 0) -> None:
        """Change some levels (quantity 0 removes one) as one depthUpdate; gap > 0 leaves a hole in U/u."""
        self.exchange.set_levels(symbol, "b", bids)
        self.exchange.set_levels(symbol, "a", asks)
        await self._after_book_change(symbol, gap)

    async def trade(self, symbol: str, price: Number, qty: Number, *, buyer_maker: bool = False,
                    ts: int | None = None) -> None:
        """A public trade prints (pushed on @trade, @aggTrade and @kline_*); resting orders it reaches fill."""
        self.exchange.trade(symbol, price, qty, buyer_maker, ts)
        await self._flush()

    async def garbled_trade(self, symbol: str, price: str, qty: str = "0.01") -> None:
        """A public trade as an exchange in trouble may push it (price "-1", "0", "1e400", "NaN", ""): on @trade and
        @aggTrade only, never matched against resting orders or put into candles."""
        name = self.exchange.spec(symbol).symbol
        now = self.exchange.clock()
        self.exchange.outbox.append(Event("trade", name, {"e": "trade", "E": now, "s": name, "t": 10 ** 9 + now,
                                                          "p": price, "q": qty, "T": now, "m": False, "M": True}))
        await self._flush()

    async def garbled_report(self, ref: int | str, **fields: str) -> None:
        """An executionReport of an order as it stands, with fields overwritten by what an exchange in trouble may
        send ("q": "NaN"), pushed on the user-data stream; the order itself is unchanged."""
        order = self.exchange.resolve(ref)
        self.exchange._report(order, "NEW")  # the report as it stands, then garbled before it goes out
        self.exchange.outbox[-1].payload.update(fields)
        await self._flush()

    async def fill(self, ref: int | str, qty: Number | None = None, price: Number | None = None) -> Order:
        """Fill a resting order (by order id or client order id), fully unless qty is given."""
        order = self.exchange.resolve(ref)
        self.exchange.fill(order, qty, price)
        await self._flush()
        return order

    def race_cancel(self, ref: int | str, qty: Number | None = None) -> None:
        """The next cancel of this order arrives just after a fill of qty (default: all of it).

        Fully filled, the cancel gets Binance's -2011 "Unknown order sent."; partly filled, the rest is canceled.
        """
        self.exchange.cancel_races[self.exchange.resolve(ref).order_id] = None if qty is None else dec(qty)

    async def disconnect(self) -> None:
        """Drop every websocket connection at the TCP level, as a network failure would (no close frame)."""
        conns, self._conns = self._conns, set()
        for conn in conns:
            if conn.request.transport is not None:
                conn.request.transport.abort()

    def fail_next(self, count: int, status: int = 429, retry_after: int = 1) -> None:
        """Answer the next count REST requests with 429 (rate limited) or 418 (IP banned) and Retry-After."""
        self._failures.extend([(status, retry_after)] * count)

    def silence(self, prefix: str = "") -> None:
        """Stop delivering events on streams starting with prefix ('' = all, 'user' = the user-data stream).

        Update ids still advance, so a depth stream that comes back shows a gap. A connection whose streams are all
        silenced also stops answering pings.
        """
        self._silenced.add(prefix)

    def resume(self, prefix: str = "") -> None:
        self._silenced.discard(prefix)

    def private_calls(self) -> list[Call]:
        return [call for call in self.calls if call.signed]

    # ---------------------------------------------------------------- REST

    async def _rest(self, request: web.Request) -> web.Response:
        raw_query = request.rel_url.raw_query_string
        body = await request.text()
        params = dict(parse_qsl(raw_query)) | dict(parse_qsl(body))
        signed = "signature" in params
        params.pop("signature", None)
        if self._failures:
            status, retry_after = self._failures.pop(0)
            self.calls.append(Call(request.method, request.path, signed, params, status))
            msg = "Too many requests; please use the websocket for live updates." if status == 429 else \
                "Way too much request weight used; IP banned."
            return web.json_response({"code": -1003, "msg": msg}, status=status,
                                     headers={"Retry-After": str(retry_after)})
        route = self._routes.get((request.method, request.path))
        try:
            if route is None:
                raise Reject(404, -1000, f"fake binance has no {request.method} {request.path}")
            needs_signature, handler = route
            if needs_signature:
                self._authenticate(request.headers.get("X-MBX-APIKEY"), raw_query + body, params)
            result = handler(params)
        except Reject as reject:
            self.calls.append(Call(request.method, request.path, signed, params, reject.status))
            # a refused cancel may still have filled first (race_cancel), and those events go out all the same
            await self._flush()
            return web.json_response(reject.body(), status=reject.status)
        self.calls.append(Call(request.method, request.path, signed, params))
        # Binance does not order a reply against its websocket events; the fake sends the events first, every time
        await self._flush()
        return web.json_response(result)

    def _authenticate(self, api_key: str | None, total_params: str, params: dict[str, str]) -> None:
        if not api_key:
            raise Reject(401, -2014, "API-key format invalid.")
        if api_key != self.api_key:
            raise Reject(401, -2015, "Invalid API-key, IP, or permissions for action.")
        payload, found, signature = total_params.rpartition("&signature=")
        if not found or not hmac.compare_digest(signature, self._sign(payload)):
            raise Reject(400, -1022, "Signature for this request is not valid.")
        self._check_timestamp(params)

    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()

    def _check_timestamp(self, params: dict[str, str]) -> None:
        sent, now = int(params.get("timestamp", "0")), self.now()
        if sent > now + 1000 or now - sent > int(params.get("recvWindow", "5000")):
            raise Reject(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    def _exchange_info(self, params: dict[str, str]) -> dict[str, Any]:
        return {
            "timezone": "UTC", "serverTime": self.now(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [], "symbols": [spec.exchange_info() for spec in self.exchange.specs.values()],
        }

    def _depth(self, params: dict[str, str]) -> dict[str, Any]:
        spec = self.exchange.spec(params.get("symbol", ""))
        book, limit = self.exchange.books[spec.symbol], int(params.get("limit", "100"))
        return {
            "lastUpdateId": book.update_id,
            "bids": [[fmt(p), fmt(q)] for p, q in book.sorted_side("b")[:limit]],
            "asks": [[fmt(p), fmt(q)] for p, q in book.sorted_side("a")[:limit]],
        }

    def _trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        tape = self.exchange.prints[self.exchange.spec(params.get("symbol", "")).symbol]
        return [{"id": pr.trade_id, "price": fmt(pr.price), "qty": fmt(pr.qty), "quoteQty": fmt(pr.price * pr.qty),
                 "time": pr.time, "isBuyerMaker": pr.buyer_maker, "isBestMatch": True}
                for pr in tape[-int(params.get("limit", "500")):]]

    def _agg_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        # one aggregate per print: the fake never has two fills of one taker order at one price
        tape = self.exchange.prints[self.exchange.spec(params.get("symbol", "")).symbol]
        start, end = params.get("startTime"), params.get("endTime")
        chosen = [pr for pr in tape
                  if (start is None or pr.time >= int(start)) and (end is None or pr.time <= int(end))]
        return [{"a": pr.trade_id, "p": fmt(pr.price), "q": fmt(pr.qty), "f": pr.trade_id, "l": pr.trade_id,
                 "T": pr.time, "m": pr.buyer_maker, "M": True}
                for pr in chosen[-int(params.get("limit", "500")):]]

    def _klines(self, params: dict[str, str]) -> list[list[Any]]:
        start, end = params.get("startTime"), params.get("endTime")
        return self.exchange.klines(params.get("symbol", ""), params.get("interval", ""),
                                    None if start is None else int(start), None if end is None else int(end),
                                    int(params.get("limit", "500")))

    def _ticker(self, params: dict[str, str]) -> Any:
        if "symbol" in params:
            return self.exchange.ticker_24h(params["symbol"])
        return [self.exchange.ticker_24h(symbol) for symbol in self.exchange.specs]

    def _account(self, params: dict[str, str]) -> dict[str, Any]:
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": fmt(self.exchange.fee_rate), "taker": fmt(self.exchange.fee_rate),
                                "buyer": fmt(dec(0)), "seller": fmt(dec(0))},
            "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": self.now(),
            "accountType": "SPOT", "permissions": ["SPOT"], "uid": 1,
            "balances": [{"asset": asset, "free": fmt(b.free), "locked": fmt(b.locked)}
                         for asset, b in self.exchange.balances.items()],
        }

    def _new_order(self, params: dict[str, str]) -> dict[str, Any]:
        order = self.exchange.place(params)
        assert order is not None
        ack = {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
               "clientOrderId": order.client_id, "transactTime": order.created}
        kind = params.get("newOrderRespType", "FULL")
        if kind == "ACK":
            return ack
        result = ack | {key: value for key, value in order.status_json().items()
                        if key not in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking")}
        if kind == "RESULT":
            return result
        return result | {"fills": [
            {"price": fmt(f.price), "qty": fmt(f.qty), "commission": fmt(f.commission),
             "commissionAsset": f.commission_asset, "tradeId": f.trade_id}
            for f in self.exchange.fills if f.order_id == order.order_id]}

    def _test_order(self, params: dict[str, str]) -> dict[str, Any]:
        self.exchange.place(params, test_only=True)
        return {}

    def _get_order(self, params: dict[str, str]) -> dict[str, Any]:
        return self._lookup(params).status_json()

    def _cancel_order(self, params: dict[str, str]) -> dict[str, Any]:
        order = self.exchange.cancel(self._lookup(params))
        status = order.status_json()
        return {"symbol": order.symbol, "origClientOrderId": order.client_id, "orderId": order.order_id,
                "orderListId": -1, "clientOrderId": params.get("newClientOrderId", f"cancel-{order.order_id}"),
                "transactTime": order.updated} | {key: status[key] for key in (
                    "price", "origQty", "executedQty", "cummulativeQuoteQty", "status", "timeInForce", "type",
                    "side", "selfTradePreventionMode")}

    def _lookup(self, params: dict[str, str]) -> Order:
        return self.exchange.find(params.get("symbol", ""), params.get("orderId"), params.get("origClientOrderId"))

    def _open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        return [o.status_json() for o in self.exchange.open_orders(params.get("symbol"))]

    def _all_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self.exchange.spec(params.get("symbol", "")).symbol
        return [o.status_json() for o in self.exchange.orders.values() if o.symbol == symbol]

    def _my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = self.exchange.spec(params.get("symbol", "")).symbol
        order_id = params.get("orderId")
        return [f.my_trade_json() for f in self.exchange.fills
                if f.symbol == symbol and order_id in (None, str(f.order_id))]

    # ---------------------------------------------------------------- websockets

    async def _market_ws(self, request: web.Request) -> web.WebSocketResponse:
        """Binance's raw stream endpoint: SUBSCRIBE and UNSUBSCRIBE, then bare events."""
        conn = await self._accept(request)
        async for message in self._requests(conn):
            method, params, request_id = message.get("method"), message.get("params") or [], message.get("id")
            self.calls.append(Call(str(method), request.path, False, {"params": ",".join(params)}))
            if method == "SUBSCRIBE":
                # acknowledged before any event can follow, as Binance does
                await conn.ws.send_json({"result": None, "id": request_id})
                conn.streams.update(params)
            elif method == "UNSUBSCRIBE":
                conn.streams.difference_update(params)
                await conn.ws.send_json({"result": None, "id": request_id})
            else:
                await conn.ws.send_json({"error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
                                         "id": request_id})
        return conn.ws

    async def _user_ws(self, request: web.Request) -> web.WebSocketResponse:
        """The WS-API, as far as the user-data stream: subscribe by signature, then wrapped events."""
        conn = await self._accept(request)
        async for message in self._requests(conn):
            method, params, request_id = message.get("method"), dict(message.get("params") or {}), message.get("id")
            signature = params.pop("signature", None)
            self.calls.append(Call(str(method), request.path, signature is not None,
                                   {k: str(v) for k, v in params.items()}))
            try:
                if method != "userDataStream.subscribe.signature":
                    raise Reject(400, -1100, f"fake binance WS-API has no method {method}")
                self._authenticate(params.get("apiKey"), "&".join(f"{k}={v}" for k, v in sorted(params.items()))
                                   + f"&signature={signature}", {k: str(v) for k, v in params.items()})
            except Reject as reject:
                await conn.ws.send_json({"id": request_id, "status": reject.status, "error": reject.body()})
                continue
            self._subscription_ids += 1
            await conn.ws.send_json({"id": request_id, "status": 200,
                                     "result": {"subscriptionId": self._subscription_ids}})
            conn.subscription_id = self._subscription_ids
        return conn.ws

    async def _accept(self, request: web.Request) -> _Conn:
        # pings are answered by hand so that a silenced connection can stop answering them
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        conn = _Conn(ws, request)
        self._conns.add(conn)
        self.calls.append(Call("WS", request.path, False))
        return conn

    async def _requests(self, conn: _Conn) -> AsyncIterator[dict[str, Any]]:
        """The JSON requests a client sends on one connection, until it closes."""
        try:
            async for message in conn.ws:
                if message.type == WSMsgType.PING:
                    if not self._muted(conn):
                        await conn.ws.pong(message.data)
                elif message.type == WSMsgType.TEXT:
                    yield json.loads(message.data)
        finally:
            self._conns.discard(conn)

    def _muted(self, conn: _Conn) -> bool:
        streams = conn.streams | ({"user"} if conn.subscription_id is not None else set())
        return bool(streams) and all(self._is_silenced(stream) for stream in streams)

    def _is_silenced(self, stream: str) -> bool:
        return any(stream.startswith(prefix) for prefix in self._silenced)

    async def _after_book_change(self, symbol: str, gap: int) -> None:
        self.exchange.cross_resting(symbol)
        self.exchange.commit_depth(symbol, gap)
        await self._flush()

    async def _flush(self) -> None:
        """Send the exchange's queued events, in order, to every connection that subscribed to them."""
        while self.exchange.outbox:
            event = self.exchange.outbox.pop(0)
            for conn in list(self._conns):
                for message in self._messages(conn, event):
                    try:
                        await conn.ws.send_json(message)
                    except ConnectionError:
                        self._conns.discard(conn)

    def _messages(self, conn: _Conn, event: Event) -> list[dict[str, Any]]:
        if event.kind == "user":
            if conn.subscription_id is None or self._is_silenced("user"):
                return []
            return [{"subscriptionId": conn.subscription_id, "event": event.payload}]
        name = event.symbol.lower()
        out = []
        for stream in sorted(conn.streams):
            if self._is_silenced(stream):
                continue
            if event.kind == "depth" and stream in (f"{name}@depth", f"{name}@depth@100ms", f"{name}@depth@1000ms"):
                out.append(event.payload)
            elif event.kind == "trade" and stream == f"{name}@trade":
                out.append(event.payload)
            elif event.kind == "trade" and stream == f"{name}@aggTrade":
                p = event.payload
                out.append({"e": "aggTrade", "E": p["E"], "s": p["s"], "a": p["t"], "p": p["p"], "q": p["q"],
                            "f": p["t"], "l": p["t"], "T": p["T"], "m": p["m"], "M": True})
            elif event.kind == "trade" and stream.startswith(f"{name}@kline_") and event.index >= 0:
                out.append(self._kline_event(event, stream.split("_", 1)[1]))
        return out

    def _kline_event(self, event: Event, interval: str) -> dict[str, Any]:
        """The candle that the print belongs to, as it stood right after that print."""
        trade_time, width = event.payload["T"], interval_ms(interval)
        start = trade_time - trade_time % width
        row = self.exchange.klines(event.symbol, interval, start, start + width - 1, 1, upto=event.index + 1)[0]
        tape = [pr for pr in self.exchange.prints[event.symbol][:event.index + 1] if start <= pr.time < start + width]
        return {"e": "kline", "E": event.payload["E"], "s": event.symbol, "k": {
            "t": row[0], "T": row[6], "s": event.symbol, "i": interval, "f": tape[0].trade_id,
            "L": tape[-1].trade_id, "o": row[1], "c": row[4], "h": row[2], "l": row[3], "v": row[5], "n": row[8],
            "x": False, "q": row[7], "V": row[9], "Q": row[10], "B": "0"}}
