"""Random orders against random market data: the matching engine's invariants hold whatever happens."""

import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import SimClock
from engine.core import Engine
from engine.execution.fill_model import FillModel, LimitFillRule
from engine.model.instrument import is_multiple
from engine.model.market import BookSnapshot, TradeTick
from engine.model.order import OrderSide, OrderStatus, OrderType, TimeInForce
from tests.conftest import btc

SYM = "BTC/USDT"


@settings(max_examples=int(os.environ.get("PAPERDESK_PROPERTY_EXAMPLES", 150)), deadline=None)
@given(seed=st.integers(0, 2**32), rule=st.sampled_from(list(LimitFillRule)), latency=st.sampled_from([0, 2, 7]),
       steps=st.integers(5, 80))
def test_matching_invariants(seed, rule, latency, steps):
    rng = random.Random(seed)
    clock = SimClock()
    engine = Engine(clock, [btc()], 1_000_000.0, fill_model=FillModel(latency_ns=latency, limit_fill=rule))
    mid = 100.0
    last_trade = 0
    for t in range(1, steps + 1):
        clock.advance_to(t)
        mid = max(50.0, round(mid + rng.choice([-1, 1]) * rng.random() * 2, 2))
        if rng.random() < 0.6:
            bids = tuple((round(mid - 0.05 - k * 0.1, 2), rng.randint(1, 3000) / 1000) for k in range(4))
            asks = tuple((round(mid + 0.05 + k * 0.1, 2), rng.randint(1, 3000) / 1000) for k in range(4))
            engine.process(BookSnapshot(t, SYM, bids, asks))
        if rng.random() < 0.7:
            last_trade = t
            engine.process(TradeTick(t, SYM, round(mid + rng.uniform(-0.5, 0.5), 2), rng.randint(1, 2000) / 1000,
                                     rng.choice([OrderSide.BUY, OrderSide.SELL])))
        for _ in range(rng.randint(0, 2)):
            kind = rng.choice(list(OrderType))
            price = round(mid + rng.uniform(-1.5, 1.5), 2)
            engine.submit_order("s", SYM, rng.choice([OrderSide.BUY, OrderSide.SELL]), rng.randint(100, 3000) / 1000,
                                kind,
                                price=price if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
                                stop_price=round(price + rng.uniform(-0.5, 0.5), 2)
                                if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
                                tif=rng.choice(list(TimeInForce)))
        if engine.open_orders() and rng.random() < 0.2:
            engine.cancel_order(rng.choice(engine.open_orders()).client_id)

    inst = btc()
    by_order: dict[str, float] = {}
    for fill in engine.fills:
        order = engine.orders[fill.client_id]
        by_order[fill.client_id] = by_order.get(fill.client_id, 0.0) + fill.qty
        assert fill.qty > 0 and is_multiple(fill.qty, inst.lot_size)
        if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            assert (fill.price <= order.price) if order.side is OrderSide.BUY else (fill.price >= order.price)
        assert fill.ts <= clock.now_ns()
    for order in engine.orders.values():
        filled = by_order.get(order.client_id, 0.0)
        assert abs(filled - order.filled_qty) < 1e-9
        assert order.filled_qty <= order.qty + 1e-9
        if order.status is OrderStatus.FILLED:
            assert abs(order.filled_qty - order.qty) < 1e-9
        if order.tif is not TimeInForce.GTC and order.is_open:
            # IOC/FOK never rest: open only while in flight, as a stop waiting for its trade, or parked for want
            # of a book with no trade since it arrived (the next trade is its one chance)
            in_flight = order.status is OrderStatus.SUBMITTED
            # (a stop triggered by the last trade, with no book, waits for the next trade like any parked order)
            untriggered = order.type in (OrderType.STOP, OrderType.STOP_LIMIT) and order.filled_qty == 0 and \
                order.status in (OrderStatus.ACCEPTED, OrderStatus.TRIGGERED)
            no_trade_since = last_trade <= order.created_ns + latency and order.filled_qty == 0
            assert in_flight or untriggered or no_trade_since, \
                f"{order.client_id} {order.tif.value} left {order.status.value}"
    venue_open = {o.client_id for o in engine.broker.simulator.working_orders()}
    engine_open = {o.client_id for o in engine.open_orders()}
    assert venue_open == engine_open
    cash = 1_000_000.0 + sum(f.cash_flow for f in engine.fills)
    assert abs(engine.account.cash - cash) < 1e-6
