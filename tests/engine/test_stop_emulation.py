"""Stops on a venue without native stops: the engine holds them, and sends them as market or limit orders, under
the same client id, when their price trades. The venue here is the simulated one with a testnet's capabilities."""

from __future__ import annotations

from typing import Any

from engine.brokers.broker import VenueCapabilities
from engine.brokers.paper import PaperBroker
from engine.clock import SimClock
from engine.config import AppConfig
from engine.core import Engine
from engine.model.market import BookSnapshot, MarketEvent, TradeTick
from engine.model.order import Order, OrderSide, OrderStatus, OrderType
from engine.model.venue_event import CancelAck
from engine.replay import replay
from engine.runtime import build_engine, build_fill_model, build_instruments
from engine.store.journal import StoreJournal
from engine.strategy.base import Strategy
from tests.conftest import make_config
from tests.engine.risk_helpers import T0, Manual

SEC = 1_000_000_000
BTC = "BTC/USDT"
NO_STOPS = VenueCapabilities("stopless testnet", paper=True, order_types=frozenset({OrderType.MARKET, OrderType.LIMIT}),
                             native_stops=False, simulated=True)
EMULATED = "stop emulated by the engine: stopless testnet has no native stops"


class StoplessVenue(PaperBroker):
    """The simulated venue, saying it has no stops (as a Binance-testnet broker does); it notes what reaches it."""

    capabilities = NO_STOPS

    def __init__(self, clock: SimClock, config: AppConfig) -> None:
        super().__init__(clock, build_instruments(config), build_fill_model(config), config.session.starting_cash)
        self.sent: list[tuple[str, OrderType, float | None]] = []
        self.cancels: list[str] = []

    def submit(self, order: Order) -> None:
        self.sent.append((order.client_id, order.type, order.price))
        super().submit(order)

    def cancel(self, client_id: str, reason: str) -> CancelAck:
        self.cancels.append(client_id)
        return super().cancel(client_id, reason)


def stopless_engine(strategies: list[Strategy], latency_ms: float) -> tuple[Engine, StoplessVenue]:
    config = make_config(venue={"latency_ms": latency_ms})
    clock = SimClock(T0)
    venue = StoplessVenue(clock, config)
    engine = build_engine(config, clock, strategies, broker=venue)
    engine.journal = StoreJournal(1, clock)
    return engine, venue


def market(ts: int, price: float) -> list[MarketEvent]:
    """A book one tick either side of price, then a trade at it."""
    return [BookSnapshot(ts, BTC, ((round(price - 0.01, 2), 5.0),), ((round(price + 0.01, 2), 5.0),)),
            TradeTick(ts, BTC, price, 0.5, OrderSide.BUY)]


class Desk:
    """An engine on the stopless venue (orders travel 50 ms, config.toml's default), with a hand-driven strategy 'a'
    and one price per second."""

    def __init__(self, latency_ms: float = 50.0) -> None:
        self.strategy = Manual("a", [BTC], "1m")
        self.engine, self.venue = stopless_engine([self.strategy], latency_ms)
        self.tick(60_000.0)

    def tick(self, price: float) -> None:
        clock = self.engine.clock
        assert isinstance(clock, SimClock)
        ts = clock.now_ns() + SEC
        clock.advance_to(ts)
        for event in market(ts, price):
            self.engine.process(event)

    def buy(self, qty: float, **kw: Any) -> Order:
        self.strategy._ts = self.engine.clock.now_ns()
        self.strategy.buy(BTC, qty, **kw)
        return list(self.engine.orders.values())[-1]

    def held(self) -> float:
        return self.engine.account.strategy_qty.get(("a", BTC), 0.0)

    def history(self, order: Order) -> list[tuple[str, str]]:
        """The order's journal rows: (status, reason) per transition."""
        journal = self.engine.journal
        assert isinstance(journal, StoreJournal)
        return [(row[4], row[6]) for row in journal.pending["order_event"] if row[1] == order.client_id]


def test_a_stop_waits_in_the_engine_and_goes_out_as_a_market_order_with_its_client_id_when_its_price_trades():
    desk = Desk()
    stop = desk.buy(0.01, stop_price=60_100.0)
    assert stop.status is OrderStatus.ACCEPTED and stop.reason == EMULATED
    desk.tick(60_050.0)
    assert desk.venue.sent == [] and desk.venue.simulator.working_orders() == []  # the venue never heard of it
    desk.tick(60_100.0)
    assert desk.venue.sent == [(stop.client_id, OrderType.MARKET, None)] and stop.status is OrderStatus.TRIGGERED
    desk.tick(60_100.0)                               # it reached the venue
    assert stop.status is OrderStatus.FILLED and stop.type is OrderType.STOP and desk.held() == 0.01
    assert [f.client_id for f in desk.engine.fills] == [stop.client_id]
    assert [status for status, _ in desk.history(stop)] == ["SUBMITTED", "ACCEPTED", "TRIGGERED", "FILLED"]
    assert desk.history(stop)[2][1] == "emulated stop triggered at 60100: sent to stopless testnet as a market order"
    assert any(f"{stop.client_id}" in line and "triggered at 60100" in line for _, _, line in desk.engine.events)


def test_a_stop_limit_goes_out_as_a_limit_at_its_limit_price():
    desk = Desk()
    stop_limit = desk.buy(0.01, stop_price=60_100.0, price=60_110.0)
    assert stop_limit.status is OrderStatus.ACCEPTED and stop_limit.reason == EMULATED
    desk.tick(60_100.0)
    assert desk.venue.sent == [(stop_limit.client_id, OrderType.LIMIT, 60_110.0)]
    desk.tick(60_100.0)
    assert stop_limit.status is OrderStatus.FILLED and stop_limit.avg_fill_price <= 60_110.0


def test_a_triggered_stop_limit_the_market_ran_past_rests_at_the_venue_and_is_canceled_there():
    desk = Desk()
    stop_limit = desk.buy(0.01, stop_price=60_100.0, price=60_110.0)
    desk.tick(60_200.0)                               # through the stop and past the limit
    desk.tick(60_200.0)
    assert stop_limit.status is OrderStatus.TRIGGERED
    assert desk.venue.simulator.working_orders()[0].type is OrderType.LIMIT
    assert desk.engine.cancel_order(stop_limit.client_id)
    assert desk.venue.cancels == [stop_limit.client_id] and stop_limit.status is OrderStatus.CANCELED


def test_canceling_a_stop_before_it_triggers_never_reaches_the_venue():
    desk = Desk()
    stop = desk.buy(0.01, stop_price=60_100.0)
    assert desk.engine.cancel_order(stop.client_id)
    assert stop.status is OrderStatus.CANCELED and "held by the engine" in stop.reason
    assert not desk.engine.cancel_order(stop.client_id)  # canceled once
    desk.tick(60_200.0)
    assert desk.venue.sent == [] and desk.venue.cancels == [] and desk.held() == 0.0
    assert not desk.engine.open_orders() and desk.engine.oms.pending_qty(("a", BTC)) == 0.0


def test_a_stop_the_venue_would_refuse_is_rejected_when_placed_not_when_it_triggers():
    desk = Desk()
    stop = desk.buy(0.01, stop_price=60_100.005)       # off the 0.01 tick
    assert stop.status is OrderStatus.REJECTED and stop.reason.startswith("stop tick size")
    assert EMULATED in stop.reason and desk.venue.sent == []


def test_a_brackets_stop_loss_closes_the_position_and_cancels_the_take_profit():
    desk = Desk()
    entry = desk.buy(0.01, stop_loss=59_500.0, take_profit=61_000.0)
    desk.tick(60_000.0)
    assert entry.status is OrderStatus.FILLED and desk.held() == 0.01
    take, stop = sorted((o for o in desk.engine.open_orders() if o.origin == "exit"), key=lambda o: o.type)
    assert (stop.type, stop.stop_price, take.type, take.price) == (OrderType.STOP, 59_500.0, OrderType.LIMIT, 61_000.0)
    assert stop.status is OrderStatus.ACCEPTED and stop.reason == f"stop-loss; {EMULATED}"
    assert [cid for cid, _, _ in desk.venue.sent] == [entry.client_id, take.client_id]  # the stop stays here
    desk.tick(59_800.0)
    assert desk.held() == 0.01 and stop.status is OrderStatus.ACCEPTED
    desk.tick(59_400.0)                               # through the stop
    desk.tick(59_400.0)
    assert stop.status is OrderStatus.FILLED and desk.held() == 0.0
    assert (stop.client_id, OrderType.MARKET, None) in desk.venue.sent
    assert take.status is OrderStatus.CANCELED and desk.venue.cancels == [take.client_id]
    assert not desk.engine.open_orders()


def test_a_take_profit_fill_cancels_the_held_stop_loss_in_the_engine():
    desk = Desk()
    desk.buy(0.01, stop_loss=59_500.0, take_profit=61_000.0)
    desk.tick(60_000.0)
    stop = next(o for o in desk.engine.open_orders() if o.type is OrderType.STOP)
    desk.tick(61_100.0)
    assert desk.held() == 0.0 and stop.status is OrderStatus.CANCELED
    assert stop.client_id not in desk.venue.cancels and stop.client_id not in {c for c, _, _ in desk.venue.sent}


class StopTrader(Strategy):
    """On its own trades: a bracketed entry first, then a stop-limit entry above the market, then a stop below."""

    kind = "test_stop_trader"

    def on_start(self) -> None:
        self.trades = 0

    def on_tick(self, tick: TradeTick) -> None:
        self.trades += 1
        n = self.trades
        if n == 2:
            self.buy(BTC, 0.01, stop_loss=round(tick.price - 300, 2), take_profit=round(tick.price + 900, 2))
        elif n == 40:
            self.buy(BTC, 0.02, stop_price=round(tick.price + 150, 2), price=round(tick.price + 200, 2))
        elif n == 80 and self.position(BTC) > 0:
            self.sell(BTC, round(self.position(BTC), 4), stop_price=round(tick.price - 100, 2))


def test_a_replay_of_the_same_market_data_triggers_the_same_stops_at_the_same_events():
    # down through the bracket's stop-loss, up through the stop-limit entry, then a saw-toothed fall
    prices = ([60_000.0 - 20 * i for i in range(30)] + [59_400.0 + 40 * i for i in range(30)]
              + [60_600.0 + 5 * ((i * 7) % 23) - 8 * i for i in range(100)])
    events = [e for i, price in enumerate(prices) for e in market(T0 + (i + 1) * SEC, price)]
    runs = []
    for _ in range(2):
        engine, venue = stopless_engine([StopTrader("t", [BTC], "1m")], 50.0)
        replay(engine, events)
        journal = engine.journal
        assert isinstance(journal, StoreJournal)
        runs.append((venue.sent, venue.cancels, [(f.fill_id, f.ts, f.qty, f.price, f.fee) for f in engine.fills],
                     journal.pending["order_event"], list(engine.events), engine.account.cash))
    first, second = runs
    assert first == second
    triggered = [row for row in first[3] if row[4] == "TRIGGERED"]
    assert len(triggered) == 3 and all("emulated stop triggered" in row[6] for row in triggered)
    assert {t for _, t, _ in first[0]} <= {OrderType.MARKET, OrderType.LIMIT}  # no stop ever reached the venue
