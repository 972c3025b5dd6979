"""ccxt clients, and how the feed and the sandbox broker retry them.

The client for market data never holds credentials, so ccxt refuses any signed call before it leaves the machine.
Sandbox mode adds one keyed client for orders, switched to the exchange's testnet before the keys are set. Either may
be pointed at a stand-in exchange on this machine (a test fake, a recorder), and nowhere else.
"""

from __future__ import annotations

import difflib
import ipaddress
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support
import ccxt.pro

from engine.venues_ccxt.credentials import Credentials
from engine.venues_ccxt.markets import VenueInputError

URL_SETS = ("api", "test", "demo", "apiBackup")
# settings that would sign requests, or send them somewhere other than the venue or base_url
REFUSED_SETTINGS = ("apiKey", "secret", "password", "uid", "privateKey", "walletAddress", "token", "login", "twofa",
                    "urls", "hostname")
# ccxt retries a failed book snapshot at once (3 times by default), hammering a venue that just said 429;
# the feed retries with backoff instead
COMMON_OPTIONS: dict[str, Any] = {"watchOrderBook": {"maxRetries": 1}}
PAPER_OPTIONS: dict[str, dict[str, Any]] = {
    # otherwise load_markets also fetches the futures exchanges (fapi, dapi) and the margin pair lists
    "binance": {"fetchCurrencies": False, "fetchMargins": False, "fetchMarkets": {"types": ["spot"]}},
    # otherwise load_markets also lists okx's futures, swaps and options (two requests for the options alone)
    "okx": {"fetchMarkets": {"types": ["spot"]}},
}


def make_exchange(exchange_id: str, base_url: str | None = None, settings: Mapping[str, Any] | None = None,
                  sandbox: bool = False) -> Any:
    """A public-only ccxt client for exchange_id: ccxt.pro (websockets) when ccxt has it there, else REST only.

    sandbox: on the exchange's testnet (refused for an exchange ccxt knows no testnet of). base_url redirects every
    API URL to a loopback address (http://127.0.0.1:PORT); settings are further ccxt constructor settings (timeouts,
    "streaming", "options"), never credentials or URLs.
    """
    if exchange_id in ccxt.pro.exchanges:
        cls = getattr(ccxt.pro, exchange_id)
    elif exchange_id in ccxt.exchanges:
        cls = getattr(ccxt.async_support, exchange_id)
    else:
        close = difflib.get_close_matches(exchange_id.lower(), ccxt.exchanges, n=5, cutoff=0.6)
        hint = f"close ones: {', '.join(close)}" if close else f"ccxt {ccxt.__version__} knows {len(ccxt.exchanges)}"
        raise VenueInputError(f"ccxt has no exchange {exchange_id!r} ({hint})")
    extra = dict(settings or {})
    refused = sorted(key for key in REFUSED_SETTINGS if key in extra)
    if refused:
        raise VenueInputError(f"paper mode takes no {', '.join(refused)} in the ccxt settings: it reads public data "
                              f"only, and base_url is the one way to redirect it")
    options = ccxt.Exchange.deep_extend(COMMON_OPTIONS, PAPER_OPTIONS.get(exchange_id, {}), extra.pop("options", {}))
    exchange = cls({"enableRateLimit": True, **extra, "options": options})
    if sandbox:
        # before point_at_loopback: set_sandbox_mode swaps the URL sets, and the testnet's must be the ones redirected
        try:
            exchange.set_sandbox_mode(True)
        except ccxt.NotSupported:
            raise VenueInputError(f"ccxt {ccxt.__version__} knows no testnet for {exchange_id}: sandbox mode needs "
                                  f"one (use mode 'paper')") from None
    if base_url is not None:
        point_at_loopback(exchange, base_url)
    exchange.unreadable = UnreadableMessages.guard(exchange)
    return exchange


@dataclass(slots=True)
class UnreadableMessages:
    """Websocket messages ccxt could not read, dropped so the connection reads on.

    ccxt reads a connection's next message only after handle_message has returned, so one message that raises (a
    Binance trade priced "NaN" does, in ccxt's number parsing) would end every stream on that socket for good, with
    no error to anyone watching them. listeners hear about each dropped message (what ccxt raised, in a line) and
    keep the count: the feed, and the sandbox broker for its order stream.
    """

    listeners: list[Callable[[str], None]] = field(default_factory=list)

    @classmethod
    def guard(cls, exchange: Any) -> UnreadableMessages:
        """Wrap the exchange's handle_message (before any websocket is opened: each takes it when created)."""
        record = cls()
        handle = exchange.handle_message

        def handle_message(client: Any, message: Any) -> Any:
            try:
                return handle(client, message)
            except Exception as error:  # any error here, ours or ccxt's, would stop the socket's reading
                record.dropped(f"{type(error).__name__}: {' '.join(str(error).split())[:160]}")
                return None

        exchange.handle_message = handle_message
        return record

    def dropped(self, why: str) -> None:
        for listener in self.listeners:
            listener(why)


def make_keyed_exchange(exchange_id: str, credentials: Credentials, base_url: str | None = None,
                        settings: Mapping[str, Any] | None = None) -> Any:
    """A client that signs, for sandbox orders: on the testnet (or base_url) first, the keys set only then."""
    exchange = make_exchange(exchange_id, base_url, settings, sandbox=True)
    exchange.apiKey, exchange.secret = credentials.key, credentials.secret
    return exchange


def point_at_loopback(exchange: Any, base_url: str) -> None:
    """Send every API URL of a ccxt client to base_url, keeping each URL's path.

    https://api.binance.com/api/v3 -> http://127.0.0.1:PORT/api/v3. A websocket URL also keeps the first label of its
    host, so streams on different hosts stay apart: wss://stream.binance.com:9443/ws -> ws://127.0.0.1:PORT/stream/ws.
    """
    http_base = loopback_url(base_url)
    ws_base = ("wss" if http_base.startswith("https") else "ws") + http_base[http_base.index(":"):]
    for key in URL_SETS:
        if key in exchange.urls:
            exchange.urls[key] = _rewrite(exchange.urls[key], http_base, ws_base)
    strays = [url for url in api_urls(exchange) if not _is_loopback(urlsplit(url).hostname)]
    if strays:
        raise VenueInputError(f"{exchange.id}: could not redirect {', '.join(strays)} to {base_url}")


def loopback_url(url: str) -> str:
    """url without a trailing slash, if it is http(s) on a loopback address; anything else is refused."""
    try:
        parts = urlsplit(url)
        local = parts.scheme in ("http", "https") and _is_loopback(parts.hostname)
        plain = not (parts.query or parts.fragment or parts.username)
    except ValueError:
        local = plain = False
    if not (local and plain):
        shown = _without_userinfo(url)  # a password written into the URL is not repeated in messages
        raise VenueInputError(f"base URL {shown!r} refused: a venue may be redirected only to this machine "
                              f"(http://127.0.0.1:PORT, http://[::1]:PORT or http://localhost:PORT)")
    return url.rstrip("/")


def _without_userinfo(url: str) -> str:
    at = url.find("@")
    scheme = url.find("://")
    return url if at < 0 or scheme < 0 or at < scheme else url[:scheme + 3] + "..." + url[at:]


def api_urls(exchange: Any) -> list[str]:
    """Every http(s) and ws(s) URL in the client's API URL sets (what point_at_loopback rewrites)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and urlsplit(value).scheme in ("http", "https", "ws", "wss"):
            found.append(value)

    for key in URL_SETS:
        walk(exchange.urls.get(key))
    return found


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """The seconds a Retry-After header asks for (its HTTP-date form is not used by crypto venues: None)."""
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                seconds = float(value)
            except ValueError:
                return None
            return seconds if seconds >= 0 else None
    return None


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential delays between retries, each stretched by up to `jitter` of itself at random, so that clients
    cut off together do not all come back at the same instant."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number attempt (0 for the first retry)."""
        base = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        return base * (1.0 + self.jitter * rng.random())


def _rewrite(value: Any, http_base: str, ws_base: str) -> Any:
    if isinstance(value, Mapping):
        return {key: _rewrite(item, http_base, ws_base) for key, item in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, http_base, ws_base) for item in value]
    if not isinstance(value, str):
        return value
    parts = urlsplit(value)
    if parts.scheme in ("http", "https"):
        return http_base + parts.path
    if parts.scheme in ("ws", "wss"):
        return f"{ws_base}/{(parts.hostname or '').split('.')[0]}{parts.path}"
    return value


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
