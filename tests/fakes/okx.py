"""A loopback OKX (v5 API, spot, public market data) for driving the real ccxt okx clients in paper-mode tests.

    async with FakeOkx() as fake:
        await fake.set_book("BTC/USDT", bids=[("50000", "1")], asks=[("50000.1", "2")])
        exchange = make_exchange("okx", fake.http_url)   # a session: [venue] url = fake.http_url

It serves on 127.0.0.1 and an OS-chosen port only what ccxt's okx class reads in paper mode:
- REST: GET /api/v5/public/instruments (the spot list with OKX's tickSz, lotSz and minSz), /api/v5/market/books and
  /api/v5/market/trades;
- the public websocket, /<host label>/ws/v5/public (point_at_loopback turns wss://ws.okx.com:443/ws/v5/public into
  /ws/ws/v5/public): subscribe and unsubscribe to `books` (a snapshot, then updates chained by seqId and prevSeqId)
  and `trades`; OKX's text "ping" is answered "pong". (ccxt asks for books5 or bbo-tbt only for a book of 5 levels
  or fewer, which paper mode never does.)
The book and the trade tape are the test's: it moves them with the methods below. Every request is recorded in
`calls`; a private one (an OK-ACCESS-* header, a path outside public/market/system, a login, the private or business
websocket) is refused, and private_calls() lists it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

LOOPBACK = "127.0.0.1"
PUBLIC_REST = ("/api/v5/public/", "/api/v5/market/", "/api/v5/system/")
Level = tuple[str | Decimal, str | Decimal]


@dataclass(frozen=True)
class OkxSpot:
    """One spot instrument as OKX lists it (GET /api/v5/public/instruments)."""

    base: str
    quote: str
    tick: str = "0.1"
    lot: str = "0.00000001"
    min_size: str = "0.00001"

    @property
    def inst_id(self) -> str:
        return f"{self.base}-{self.quote}"

    def instrument(self) -> dict[str, str]:
        return {"instType": "SPOT", "instId": self.inst_id, "instFamily": "", "uly": "", "baseCcy": self.base,
                "quoteCcy": self.quote, "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "ctType": "",
                "optType": "", "stk": "", "alias": "", "category": "1", "lever": "10", "listTime": "1548133413000",
                "expTime": "", "tickSz": self.tick, "lotSz": self.lot, "minSz": self.min_size,
                "maxLmtSz": "9999999999", "maxMktSz": "1000000", "state": "live", "ruleType": "normal"}


DEFAULT_SPOTS = (OkxSpot("BTC", "USDT"), OkxSpot("ETH", "USDT", tick="0.01", lot="0.000001", min_size="0.0001"))


@dataclass(frozen=True)
class Call:
    """One request: an HTTP verb and path; "WS" and the path for a websocket connection; the op (subscribe,
    unsubscribe, login ...) and the path for a websocket request, its args as "channel:instId" in params."""

    method: str
    path: str
    private: bool
    params: dict[str, str] = field(default_factory=dict)
    status: int = 200


@dataclass
class _Book:
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    seq_id: int = 1000
    ts: int = 0

    def side(self, name: str) -> list[list[str]]:
        levels = self.bids if name == "bids" else self.asks
        prices = sorted(levels, reverse=name == "bids")
        return [[_fmt(price), _fmt(levels[price]), "0", "1"] for price in prices]


@dataclass(frozen=True)
class _Print:
    trade_id: int
    price: Decimal
    size: Decimal
    side: str
    ts: int

    def json(self, inst_id: str) -> dict[str, str]:
        return {"instId": inst_id, "tradeId": str(self.trade_id), "px": _fmt(self.price), "sz": _fmt(self.size),
                "side": self.side, "ts": str(self.ts), "count": "1"}


@dataclass(eq=False)
class _Conn:
    ws: web.WebSocketResponse
    request: web.Request
    channels: set[tuple[str, str]] = field(default_factory=set)  # (channel, instId)


class FakeOkx:
    """The fake exchange: an aiohttp app on 127.0.0.1, port 0, plus the controls a test moves it with."""

    def __init__(self, spots: Iterable[OkxSpot] = DEFAULT_SPOTS) -> None:
        self.spots = {spot.inst_id: spot for spot in spots}
        self.books = {inst_id: _Book() for inst_id in self.spots}
        self.tapes: dict[str, list[_Print]] = {inst_id: [] for inst_id in self.spots}
        self.calls: list[Call] = []
        self._trade_ids = 500_000
        self._conns: set[_Conn] = set()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> FakeOkx:
        app = web.Application()
        app.router.add_get("/{host}/ws/v5/{access}", self._ws)
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

    async def __aenter__(self) -> FakeOkx:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self._port}"

    # ---------------------------------------------------------------- test controls

    async def set_book(self, symbol: str, bids: Iterable[Level], asks: Iterable[Level], gap: int = 0) -> None:
        """Replace the whole book; `books` subscribers get the difference as one update (gap: seqIds skipped)."""
        book = self.books[_inst_id(symbol)]
        new_bids, new_asks = _levels(bids), _levels(asks)
        changes = {"bids": _diff(book.bids, new_bids), "asks": _diff(book.asks, new_asks)}
        book.bids, book.asks = new_bids, new_asks
        await self._book_changed(_inst_id(symbol), changes, gap)

    async def update_book(self, symbol: str, bids: Iterable[Level] = (), asks: Iterable[Level] = (),
                          gap: int = 0) -> None:
        """Change some levels (size 0 removes one) as one update; gap > 0 makes its prevSeqId skip that many ids,
        as if the updates between had been lost."""
        book = self.books[_inst_id(symbol)]
        changes: dict[str, dict[Decimal, Decimal]] = {"bids": _levels(bids, keep_zero=True),
                                                      "asks": _levels(asks, keep_zero=True)}
        for name, levels in (("bids", book.bids), ("asks", book.asks)):
            for price, size in changes[name].items():
                if size:
                    levels[price] = size
                else:
                    levels.pop(price, None)
        await self._book_changed(_inst_id(symbol), changes, gap)

    async def trade(self, symbol: str, price: str | Decimal, size: str | Decimal, side: str = "buy") -> None:
        """A public trade prints (side: the taker's) and is pushed on `trades`."""
        inst_id = _inst_id(symbol)
        self._trade_ids += 1
        pr = _Print(self._trade_ids, Decimal(price), Decimal(size), side, _now_ms())
        self.tapes[inst_id].append(pr)
        await self._push("trades", inst_id, {"arg": {"channel": "trades", "instId": inst_id},
                                             "data": [pr.json(inst_id)]})

    async def disconnect(self) -> None:
        """Drop every websocket connection at the TCP level, as a network failure would (no close frame)."""
        conns, self._conns = self._conns, set()
        for conn in conns:
            if conn.request.transport is not None:
                conn.request.transport.abort()

    def private_calls(self) -> list[Call]:
        return [call for call in self.calls if call.private]

    def subscriptions(self, op: str = "subscribe") -> list[str]:
        """The "channel:instId" args of every websocket op request, in order."""
        return [arg for call in self.calls if call.method == op for arg in call.params["args"].split(",")]

    # ---------------------------------------------------------------- REST

    async def _rest(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        signed = any(name.upper().startswith("OK-ACCESS-") for name in request.headers)
        private = signed or not request.path.startswith(PUBLIC_REST)
        routes = {"/api/v5/public/instruments": self._instruments, "/api/v5/market/books": self._books,
                  "/api/v5/market/trades": self._trades}
        handler = routes.get(request.path) if request.method == "GET" and not private else None
        if private:
            status, body = 401, _error("50103", "Request header OK-ACCESS-KEY cannot be empty.")
        elif handler is None:
            status, body = 404, _error("404", f"fake okx has no {request.method} {request.path}")
        else:
            status, body = 200, handler(params)
        self.calls.append(Call(request.method, request.path, private, params, status))
        return web.json_response(body, status=status)

    def _instruments(self, params: dict[str, str]) -> dict[str, Any]:
        if not params.get("instType"):
            return _error("50014", "Parameter instType cannot be empty.")
        listed = [spot.instrument() for spot in self.spots.values()] if params["instType"] == "SPOT" else []
        return {"code": "0", "msg": "", "data": listed}

    def _books(self, params: dict[str, str]) -> dict[str, Any]:
        book = self.books.get(params.get("instId", ""))
        if book is None:
            return _error("51001", "Instrument ID does not exist.")
        size = int(params.get("sz", "1"))
        return {"code": "0", "msg": "", "data": [{"bids": book.side("bids")[:size], "asks": book.side("asks")[:size],
                                                   "ts": str(book.ts or _now_ms())}]}

    def _trades(self, params: dict[str, str]) -> dict[str, Any]:
        inst_id = params.get("instId", "")
        if inst_id not in self.tapes:
            return _error("51001", "Instrument ID does not exist.")
        newest = self.tapes[inst_id][::-1][:int(params.get("limit", "100"))]
        return {"code": "0", "msg": "", "data": [pr.json(inst_id) for pr in newest]}

    # ---------------------------------------------------------------- websocket

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Conn(ws, request)
        public = request.match_info["access"] == "public"
        self.calls.append(Call("WS", request.path, not public))
        self._conns.add(conn)
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                if message.data == "ping":
                    await ws.send_str("pong")
                    continue
                await self._ws_request(conn, json.loads(message.data), public)
        finally:
            self._conns.discard(conn)
        return ws

    async def _ws_request(self, conn: _Conn, message: dict[str, Any], public: bool) -> None:
        op, args = message.get("op"), message.get("args") or []
        names = [f"{arg.get('channel')}:{arg.get('instId')}" for arg in args if isinstance(arg, dict)]
        self.calls.append(Call(str(op), conn.request.path, op == "login" or not public, {"args": ",".join(names)}))
        conn_id = f"{id(conn) & 0xFFFFFFFF:08x}"
        if op not in ("subscribe", "unsubscribe") or not public:
            await conn.ws.send_json({"event": "error", "code": "60012", "connId": conn_id,
                                     "msg": f"Illegal request: {json.dumps(message)}"})
            return
        for arg in args:
            channel, inst_id = arg.get("channel"), arg.get("instId")
            if channel not in ("books", "trades") or inst_id not in self.spots:
                await conn.ws.send_json({"event": "error", "code": "60018", "connId": conn_id,
                                         "msg": f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist."})
                continue
            await conn.ws.send_json({"event": op, "arg": {"channel": channel, "instId": inst_id}, "connId": conn_id})
            if op == "unsubscribe":
                conn.channels.discard((channel, inst_id))
                continue
            conn.channels.add((channel, inst_id))
            if channel == "books":
                await self._send(conn, self._book_message(inst_id, "snapshot", prev_seq_id=-1))

    async def _book_changed(self, inst_id: str, changes: dict[str, dict[Decimal, Decimal]], gap: int) -> None:
        book = self.books[inst_id]
        prev_seq_id = book.seq_id + gap
        book.seq_id = prev_seq_id + 1
        book.ts = _now_ms()
        update = {name: [[_fmt(p), _fmt(s), "0", "1" if s else "0"] for p, s in sorted(levels.items())]
                  for name, levels in changes.items()}
        await self._push("books", inst_id, self._book_message(inst_id, "update", prev_seq_id, update))

    def _book_message(self, inst_id: str, action: str, prev_seq_id: int,
                      levels: dict[str, list[list[str]]] | None = None) -> dict[str, Any]:
        book = self.books[inst_id]
        sides = levels or {"bids": book.side("bids"), "asks": book.side("asks")}
        return {"arg": {"channel": "books", "instId": inst_id}, "action": action,
                "data": [{**sides, "ts": str(book.ts or _now_ms()), "prevSeqId": prev_seq_id, "seqId": book.seq_id}]}

    async def _push(self, channel: str, inst_id: str, message: dict[str, Any]) -> None:
        for conn in list(self._conns):
            if (channel, inst_id) in conn.channels:
                await self._send(conn, message)

    async def _send(self, conn: _Conn, message: dict[str, Any]) -> None:
        try:
            await conn.ws.send_json(message)
        except ConnectionError:
            self._conns.discard(conn)


def _inst_id(symbol: str) -> str:
    return symbol.replace("/", "-")


def _levels(levels: Iterable[Level], keep_zero: bool = False) -> dict[Decimal, Decimal]:
    parsed = {Decimal(price): Decimal(size) for price, size in levels}
    return parsed if keep_zero else {price: size for price, size in parsed.items() if size}


def _diff(old: dict[Decimal, Decimal], new: dict[Decimal, Decimal]) -> dict[Decimal, Decimal]:
    """The levels that changed from old to new, size 0 for a level removed."""
    return {price: new.get(price, Decimal(0)) for price in old.keys() | new.keys()
            if old.get(price) != new.get(price)}


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _error(code: str, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": []}


def _now_ms() -> int:
    return int(time.time() * 1000)

