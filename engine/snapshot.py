"""Read-only pictures of the engine for the operator (console and status lines); never fed back."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable
from weakref import WeakKeyDictionary

from engine.data.feed import FeedHealth

if TYPE_CHECKING:  # `paperdesk status` formats a saved VenueHealth: importing the engine would slow it down
    from engine.brokers.broker import Broker
    from engine.clock import LiveClock
    from engine.config import VenueConfig
    from engine.core import Engine
    from engine.model.fill import Fill
    from engine.model.order import Order
    from engine.model.venue_event import VenueEvent

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    qty: float
    avg_price: float
    mark: float
    unrealised: float
    realised: float


@dataclass(frozen=True, slots=True)
class StrategyView:
    name: str
    kind: str
    status: str        # RUNNING, FAILED, ... (the strategy's code)
    error: str
    state: str = "ACTIVE"  # its effective trading state: its own restriction or the portfolio's, the tighter
    positions: tuple[tuple[str, float], ...] = ()  # (symbol, qty) it holds, flat ones left out
    pnl: float = 0.0   # closed trades net of fees, plus its open positions marked
    trades: int = 0    # closed round trips
    wins: int = 0
    phase: int | None = None  # its progressive risk phase, when phases are defined
    behaviour: float | None = None  # its latest live behaviour score (None until one scores it)

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None


@dataclass(frozen=True, slots=True)
class OrderView:
    """An open order as the operator sees it; prices None where its type has none."""

    client_id: str
    strategy: str
    symbol: str
    side: str          # BUY | SELL
    type: str
    qty: float
    filled: float
    price: float | None
    stop_price: float | None
    created_ns: int    # market time
    status: str
    origin: str        # strategy | exit (a bracket child) | flatten (a close-out)
    reason: str


@dataclass(frozen=True, slots=True)
class QuoteView:
    """A symbol's market: best bid and ask, last trade, and when (market time) the data last changed."""

    symbol: str
    bid: float | None
    ask: float | None
    last: float | None
    ts: int | None

    @property
    def spread(self) -> float | None:
        return None if self.bid is None or self.ask is None else self.ask - self.bid


@dataclass(frozen=True, slots=True)
class EventView:
    """One line of the event log: seq grows by one per line ever logged, so a watcher appends only new ones."""

    seq: int
    ts: int            # market time
    kind: str          # order | fill | engine (states, breakers, refusals, commands, warnings)
    level: str         # INFO | WARN | ERROR
    text: str


@runtime_checkable
class TimesOrders(Protocol):
    """A broker that measures its round trips to a real venue (the sandbox broker)."""

    def latency_ms(self) -> dict[str, dict[str, float]]: ...


@runtime_checkable
class ReportsHealth(Protocol):
    """A broker with a connection of its own to report on (the sandbox broker's order stream)."""

    def health(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class VenueHealth:
    """The venue as the operator sees it; JSON-ready, so `paperdesk status` can show it from another shell."""

    name: str                 # "binance (paper)", "binance (sandbox)", "simulated"
    simulated: bool           # the built-in synthetic market: shown in one line
    connected: bool
    detail: str               # the feed's own words (reconnecting in X s, rate limited, ...), then the order stream's
    ages_s: dict[str, float]  # symbol -> wall seconds since its last message (since subscribing, before any)
    latency_simulated_ms: float | None = None  # fills simulated here: the configured order latency
    latency_p50_ms: float | None = None        # a real venue: its recent order acknowledgements, measured
    latency_max_ms: float | None = None
    latency_count: int = 0
    reconciliation: str | None = None  # a real venue's latest reconciliation summary (None: fills are ours)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VenueHealth:
        return cls(**data)

    @property
    def state(self) -> str:
        return "connected" if self.connected else "NOT CONNECTED"

    def latency(self) -> str:
        if self.latency_simulated_ms is not None:
            return f"{self.latency_simulated_ms:g} ms (simulated)"
        if self.latency_p50_ms is None or self.latency_max_ms is None:
            return "no order round trip yet"
        return (f"p50 {self.latency_p50_ms:.0f} ms, max {self.latency_max_ms:.0f} ms "
                f"(last {self.latency_count} order acks)")

    def ages(self) -> str:
        return ", ".join(f"{symbol} {age:.1f} s ago" for symbol, age in self.ages_s.items()) or "no symbols"

    def lines(self) -> list[str]:
        """For `paperdesk status`: one line for the simulated venue, a few for a real one."""
        if self.simulated:
            # the in-process market is down only once the session closed it
            return [f"venue: {self.name}, {'connected' if self.connected else 'closed'}"]
        lines = [f"venue: {self.name}, {self.state}" + (f" ({self.detail})" if self.detail else ""),
                 f"  last message: {self.ages()}", f"  order latency: {self.latency()}"]
        if self.reconciliation is not None:
            lines.append(f"  reconciliation: {self.reconciliation}")
        return lines

    def short(self) -> str:
        """For the headless status line: venue=binance(paper):connected."""
        word = "connected" if self.connected else "closed" if self.detail == "closed" else "down"
        return f"{self.name.replace(' ', '')}:{word}"

    def header(self, width: int) -> str:
        """One console line of at most width characters: the feed's detail is cut first (dropped if too little of it
        would be left, kept to 28 characters when disconnected), then the line's end."""
        ages = " ".join(f"{symbol} {age:.1f}s" for symbol, age in self.ages_s.items())
        if self.latency_simulated_ms is not None:
            latency = f"{self.latency_simulated_ms:g} ms sim"
        elif self.latency_p50_ms is not None and self.latency_max_ms is not None:
            latency = f"p50 {self.latency_p50_ms:.0f} max {self.latency_max_ms:.0f} ms"
        else:
            latency = "none yet"
        head = f"{self.name} {self.state}"
        rest = (f"  age {ages}" if ages else "") + f"  latency {latency}"
        if self.reconciliation is not None:
            rest += f"  recon: {self.reconciliation}"
        room = width - len(head) - len(rest) - 3
        if not self.connected:
            room = max(room, 28)  # why it is down (and when it retries) matters more than the line's end
        if self.detail and room >= 12:
            head += f" ({_fit(self.detail, room)})"  # it says why the state is what it is
        return _fit(head + rest, width, middle=False)


def _fit(text: str, width: int, middle: bool = True) -> str:
    """text in at most width characters; a middle cut keeps a detail's end too (the retry plan comes last)."""
    if len(text) <= width:
        return text
    if not middle:
        return text[:width - 1] + "…"
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def venue_health(config: VenueConfig, broker: Broker, feed: FeedHealth, clock: LiveClock) -> VenueHealth:
    """What the feed (on clock, the wall clock) and the broker say about the session's venue now."""
    caps = broker.capabilities
    simulated = config.kind == "simulated"
    now = clock.now_ns()
    ages = {symbol: round(max(0, now - ns) / clock.speed / 1e9, 3)
            for symbol, ns in sorted(feed.received_ns_by_symbol.items())}
    connected, detail = feed.connected, feed.detail
    if isinstance(broker, ReportsHealth):
        orders = broker.health()
        if orders.get("stream") == "down":
            connected = False
            detail += f"; order stream down after {orders.get('reconnects', 0)} reconnects"
            if orders.get("last_error"):
                detail += f" ({orders['last_error']})"
    p50 = worst = None
    count = 0
    if isinstance(broker, TimesOrders):
        acks = broker.latency_ms().get("order_ack")
        if acks:
            p50, worst, count = acks["median"], acks["max"], int(acks["count"])
    # a venue holding our orders says what it found when it connected (and a resume's reconciliation with it)
    reconciliation = None if caps.simulated else getattr(broker, "reconciliation", None) or "none yet"
    return VenueHealth(caps.name, simulated, connected, detail, ages,
                       config.latency_ms if caps.simulated else None, p50, worst, count, reconciliation)


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    ts: int
    equity: float
    cash: float
    starting_cash: float
    realised: float
    unrealised: float
    fees: float
    positions: tuple[PositionView, ...]
    recent_fills: tuple[Fill, ...]
    equity_series: tuple[float, ...]
    strategies: tuple[StrategyView, ...]
    orders: int
    open_orders: int
    fills: int
    decisions: int
    events: tuple[tuple[int, str, str], ...]
    session_id: int | None = None
    restarts: int = 0
    store_backlog: int = 0
    store_waits: int = 0
    store_committed: int = 0
    store_error: str = ""
    behaviour_score: float | None = None      # the latest live score (None until one is computed)
    behaviour_unexplained: int | None = None  # its differences with no recorded cause
    risk: dict[str, Any] = field(default_factory=dict)  # Engine.risk_view(): states, gauges, phases
    feed: FeedHealth | None = None  # what the session's feed says about itself
    venue: VenueHealth | None = None  # the venue, its connection, data ages, order latency, reconciliation
    open_order_list: tuple[OrderView, ...] = ()
    quotes: tuple[QuoteView, ...] = ()
    event_log: tuple[EventView, ...] = ()  # engine lines and order flow, oldest first
    equity_ts: tuple[int, ...] = ()        # market time of each equity_series point
    markers: tuple[tuple[int, str], ...] = ()  # (market ts, what): restarts, portfolio halts, emergency stops
    speed: float = 1.0                     # market seconds per wall second (120 on the fast simulated venue)

    @property
    def trading_state(self) -> str:
        return self.risk.get("state", "ACTIVE")

    def status_line(self) -> str:
        """One line for logs and the headless mode."""
        pnl = self.equity - self.starting_cash
        held = " ".join(f"{p.symbol}:{p.qty:+g}" for p in self.positions if p.qty) or "flat"
        failed = [s.name for s in self.strategies if s.status != "RUNNING"]
        text = (f"equity={self.equity:.2f} pnl={pnl:+.2f} cash={self.cash:.2f} fees={self.fees:.2f} "
                f"orders={self.orders} open={self.open_orders} fills={self.fills} decisions={self.decisions} "
                f"positions={held}")
        if failed:
            text += f" failed={','.join(failed)}"
        text += f" trading={self.trading_state}"
        for scope in self.risk.get("scopes", ()):
            if scope["scope"] != "portfolio":
                text += f" {scope['scope']}={scope['state']}"
        warn = [f"{g['breaker']}:{g['usage']:.0%}" for g in self.risk.get("gauges", ()) if g["warn"]]
        if warn:
            text += f" breaker_warn={','.join(warn)}"
        if self.session_id is not None:
            text += (f" session={self.session_id} restarts={self.restarts} saved_rows={self.store_committed} "
                     f"backlog={self.store_backlog} backpressure_waits={self.store_waits}")
            if self.store_error:
                text += f" store_error={self.store_error!r}"
            if self.behaviour_score is not None:
                text += f" behaviour={self.behaviour_score:.2f} unexplained={self.behaviour_unexplained}"
        if self.venue is not None and not self.venue.simulated:
            text += f" venue={self.venue.short()}"
        return text


def take_snapshot(engine: Engine, n_fills: int = 20, n_equity: int = 600, n_events: int = 300) -> EngineSnapshot:
    account = engine.account
    positions = tuple(
        PositionView(symbol, p.qty, p.avg_price, account.marks.get(symbol, p.avg_price),
                     p.unrealised(account.marks.get(symbol, p.avg_price)), p.realised_pnl)
        for symbol, p in sorted(account.positions.items()))
    risk = engine.risk_view()
    curve = engine.equity_curve[-n_equity:]
    forgotten = engine.forgotten
    open_orders = engine.open_orders()
    return EngineSnapshot(
        ts=engine.clock.now_ns(), equity=account.equity(), cash=account.cash, starting_cash=account.starting_cash,
        realised=account.realised_pnl(), unrealised=account.unrealised_pnl(), fees=account.fees_paid,
        positions=positions, recent_fills=tuple(engine.fills[-n_fills:]),
        equity_series=tuple(e for _, e in curve), strategies=_strategies(engine, risk),
        orders=len(engine.orders) + forgotten.orders, open_orders=len(open_orders),
        fills=len(engine.fills) + forgotten.fills, decisions=len(engine.decisions) + forgotten.decisions,
        events=tuple(engine.events),
        risk=risk, open_order_list=tuple(_order_view(o) for o in open_orders), quotes=_quotes(engine),
        event_log=_event_log(engine, n_events), equity_ts=tuple(ts for ts, _ in curve),
        markers=tuple(engine.markers[-50:]))


def _strategies(engine: Engine, risk: Mapping[str, Any]) -> tuple[StrategyView, ...]:
    from engine.breakers.trading_state import SEVERITY, TradingState

    states = {scope["scope"]: scope["state"] for scope in risk.get("scopes", ())}
    portfolio = TradingState(risk.get("state", "ACTIVE"))
    trips, marks, held = engine.risk.trips, engine.account.marks, engine.account.strategy_qty
    views = []
    for s in engine.strategies.values():
        own = TradingState(states.get(s.name, "ACTIVE"))
        stats = trips.of(s.name)
        views.append(StrategyView(
            s.name, s.kind, s.status.value, s.error, max(own, portfolio, key=SEVERITY.__getitem__).value,
            tuple((symbol, qty) for (name, symbol), qty in sorted(held.items()) if name == s.name and qty),
            trips.marked_pnl(s.name, marks), stats.trades, stats.wins, engine.risk.phases.get(s.name)))
    return tuple(views)


def _order_view(order: Order) -> OrderView:
    return OrderView(order.client_id, order.strategy, order.symbol, order.side.name, order.type.value, order.qty,
                     order.filled_qty, order.price, order.stop_price, order.created_ns, order.status.value,
                     order.origin.value, order.reason)


def _quotes(engine: Engine) -> tuple[QuoteView, ...]:
    views = []
    for symbol in engine.instruments:
        book, trade = engine.books.get(symbol), engine.last_trades.get(symbol)
        bid = book.bids[0][0] if book is not None and book.bids else None
        ask = book.asks[0][0] if book is not None and book.asks else None
        stamps = [x.ts for x in (book, trade) if x is not None]
        views.append(QuoteView(symbol, bid, ask, trade.price if trade is not None else None,
                               max(stamps) if stamps else None))
    return tuple(views)


@dataclass(slots=True)
class _Shown:
    """The event log the last snapshot gave: each snapshot adds only the lines logged since (hundreds a second), as
    building all n again took milliseconds on the session's loop, ten times a second."""

    lines: deque[EventView]
    upto: int = 0  # the newest line's number in the log's sequence


# per engine and per length asked for
_shown: WeakKeyDictionary[Engine, dict[int, _Shown]] = WeakKeyDictionary()


def _event_log(engine: Engine, n: int) -> tuple[EventView, ...]:
    """The last n lines of the engine's log and its order flow, merged in the order they happened."""
    by_length = _shown.setdefault(engine, {})
    shown = by_length.get(n)
    if shown is None:
        shown = by_length[n] = _Shown(deque(maxlen=n))
    upto = shown.upto
    logged = zip(reversed(engine.event_seqs), reversed(engine.events), strict=True)
    new = [EventView(seq, ts, "engine", level, text) for seq, (ts, level, text) in _newer(logged, upto)]
    flow = _newer(reversed(engine.order_flow), upto)
    # a flow line names the order as it was when first shown: worded once, never again
    new += [_flow_line(seq, event, engine.orders.get(event.client_id)) for seq, event in flow]
    if new:
        new.sort(key=lambda line: line.seq)  # two runs already in order: one merge
        shown.lines.extend(new)
        shown.upto = new[-1].seq
    return tuple(shown.lines)


def _newer(newest_first: Iterable[tuple[int, T]], upto: int) -> list[tuple[int, T]]:
    """The (seq, item) pairs numbered after upto, oldest first, reading back from the newest."""
    out = []
    for seq, item in newest_first:
        if seq <= upto:
            break
        out.append((seq, item))
    out.reverse()
    return out


def _flow_line(seq: int, event: VenueEvent, order: Order | None) -> EventView:
    what = ("" if order is None
            else f" {order.strategy} {order.side.name} {order.qty:g} {order.symbol} {order.type.value}")
    fill = event.fill
    if fill is not None:
        text = (f"fill {fill.fill_id} of {event.client_id}{what}: {fill.qty:g} @ {fill.price:g} fee {fill.fee:.4f} "
                f"{fill.liquidity.value} slip {fill.slippage_bps:+.1f} bp")
        return EventView(seq, event.ts, "fill", "INFO", text)
    level = "WARN" if event.kind.name in ("REJECTED", "EXPIRED") else "INFO"
    text = f"order {event.client_id}{what} {event.kind.name}" + (f": {event.reason}" if event.reason else "")
    return EventView(seq, event.ts, "order", level, text)
