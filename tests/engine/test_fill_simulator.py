"""The paper venue's matching: book walking, queue position, IOC/FOK, stops, latency, bars, rules."""

import pytest

from engine.clock import SimClock
from engine.core import Engine
from engine.execution.fill_model import FillModel, LimitFillRule
from engine.model.fill import FillBasis, Liquidity
from engine.model.market import Bar, BookSnapshot, TradeTick
from engine.model.order import OrderSide, OrderStatus, OrderType, TimeInForce
from tests.conftest import btc

BUY, SELL = OrderSide.BUY, OrderSide.SELL
SYM = "BTC/USDT"


def make_engine(**model) -> tuple[Engine, SimClock]:
    clock = SimClock()
    return Engine(clock, [btc()], 1_000_000.0, fill_model=FillModel(**model)), clock


def book(ts=0, bids=((99.0, 1.0), (98.0, 2.0)), asks=((101.0, 1.0), (102.0, 2.0), (103.0, 5.0))) -> BookSnapshot:
    return BookSnapshot(ts, SYM, tuple(bids), tuple(asks))


def trade(ts, price, size, aggressor=SELL) -> TradeTick:
    return TradeTick(ts, SYM, price, size, aggressor)


def test_a_market_order_walks_the_book_and_pays_for_its_size():
    engine, _ = make_engine()
    engine.process(book())
    order = engine.submit_order("s", SYM, BUY, 2.5)
    assert order.status is OrderStatus.FILLED
    assert [(f.price, f.qty) for f in engine.fills] == [(101.0, 1.0), (102.0, 1.5)]
    assert order.avg_fill_price == pytest.approx((101.0 + 102.0 * 1.5) / 2.5)
    first, second = engine.fills
    # what the simulator assumed travels with each fill
    assert first.basis is FillBasis.BOOK and first.liquidity is Liquidity.TAKER
    assert first.depth == 1.0 and second.depth == 2.0
    assert first.mid_at_decision == 100.0
    assert first.slippage_bps == pytest.approx(100.0) and second.slippage_bps == pytest.approx(200.0)
    assert first.fee == pytest.approx(101.0 * 0.0005)


def test_two_orders_cannot_take_the_same_liquidity_from_one_snapshot():
    engine, _ = make_engine()
    engine.process(book())
    engine.submit_order("s", SYM, BUY, 1.0)
    engine.submit_order("s", SYM, BUY, 1.0)
    assert [f.price for f in engine.fills] == [101.0, 102.0]
    engine.process(book(ts=1))  # a new snapshot shows fresh liquidity
    engine.submit_order("s", SYM, BUY, 1.0)
    assert engine.fills[-1].price == 101.0


def test_a_market_order_larger_than_the_book_fills_what_is_there_and_cancels_the_rest():
    engine, _ = make_engine()
    engine.process(book())
    order = engine.submit_order("s", SYM, BUY, 10.0)
    assert order.status is OrderStatus.CANCELED
    assert order.filled_qty == pytest.approx(8.0)
    assert "book exhausted" in order.reason and "2" in order.reason


def test_fok_fills_all_or_nothing():
    engine, _ = make_engine()
    engine.process(book())
    refused = engine.submit_order("s", SYM, BUY, 3.5, OrderType.LIMIT, price=102.0, tif=TimeInForce.FOK)
    assert refused.status is OrderStatus.CANCELED and refused.filled_qty == 0
    assert "FOK" in refused.reason and "3 of 3.5" in refused.reason
    done = engine.submit_order("s", SYM, BUY, 3.0, OrderType.LIMIT, price=102.0, tif=TimeInForce.FOK)
    assert done.status is OrderStatus.FILLED


def test_ioc_takes_what_it_can_at_its_limit_and_cancels_the_rest():
    engine, _ = make_engine()
    engine.process(book())
    order = engine.submit_order("s", SYM, BUY, 2.0, OrderType.LIMIT, price=101.0, tif=TimeInForce.IOC)
    assert order.filled_qty == 1.0 and order.status is OrderStatus.CANCELED and "IOC" in order.reason


def test_a_resting_limit_waits_for_the_queue_ahead_of_it():
    engine, _ = make_engine()
    engine.process(book(bids=((99.0, 1.5), (98.0, 2.0))))
    order = engine.submit_order("s", SYM, BUY, 1.0, OrderType.LIMIT, price=99.0)
    assert order.status is OrderStatus.ACCEPTED and not engine.fills
    engine.process(trade(1, 99.0, 1.0))  # eats 1.0 of the 1.5 ahead of us
    assert not engine.fills
    engine.process(trade(2, 99.0, 0.8))  # 0.5 left ahead, then 0.3 reaches us
    assert [(f.qty, f.price, f.liquidity) for f in engine.fills] == [(0.3, 99.0, Liquidity.MAKER)]
    assert order.status is OrderStatus.PARTIALLY_FILLED
    engine.process(trade(3, 98.5, 5.0))  # a trade through our price fills the rest
    assert order.status is OrderStatus.FILLED
    assert engine.fills[-1].basis is FillBasis.TRADE and engine.fills[-1].depth == 5.0


def test_a_trade_through_fills_no_more_than_it_printed():
    engine, _ = make_engine()
    engine.process(book())
    order = engine.submit_order("s", SYM, BUY, 2.0, OrderType.LIMIT, price=99.5)
    engine.process(trade(1, 99.0, 0.4))
    assert order.filled_qty == pytest.approx(0.4)


@pytest.mark.parametrize(("rule", "fills_on_touch"), [(LimitFillRule.TOUCH, True), (LimitFillRule.QUEUE, False),
                                                      (LimitFillRule.TRADE_THROUGH, False)])
def test_only_the_touch_rule_fills_on_a_mere_touch(rule, fills_on_touch):
    engine, _ = make_engine(limit_fill=rule)
    engine.process(book(bids=((99.0, 3.0),)))
    order = engine.submit_order("s", SYM, BUY, 1.0, OrderType.LIMIT, price=99.0)
    engine.process(trade(1, 99.0, 1.0))
    assert (order.filled_qty == 1.0) is fills_on_touch


def test_a_marketable_limit_takes_liquidity_then_rests_the_remainder():
    engine, _ = make_engine()
    engine.process(book())
    order = engine.submit_order("s", SYM, BUY, 2.0, OrderType.LIMIT, price=101.0)
    assert order.filled_qty == 1.0 and order.status is OrderStatus.PARTIALLY_FILLED
    assert order in engine.open_orders()


def test_a_stop_triggers_on_a_trade_then_takes_the_book():
    engine, _ = make_engine()
    engine.process(book())
    order = engine.submit_order("s", SYM, SELL, 1.0, OrderType.STOP, stop_price=98.5)
    engine.process(trade(1, 98.6, 1.0))
    assert order.status is OrderStatus.ACCEPTED
    engine.process(trade(2, 98.5, 1.0))
    assert order.status is OrderStatus.FILLED and engine.fills[-1].price == 99.0


def test_a_stop_limit_becomes_a_resting_limit_when_triggered():
    engine, _ = make_engine()
    engine.process(book())
    order = engine.submit_order("s", SYM, BUY, 1.0, OrderType.STOP_LIMIT, price=100.5, stop_price=100.0)
    engine.process(trade(1, 100.0, 0.1, BUY))
    assert order.status is OrderStatus.TRIGGERED and not engine.fills
    engine.process(trade(2, 100.4, 2.0))
    assert order.status is OrderStatus.FILLED and engine.fills[-1].price == 100.5


def test_latency_keeps_an_order_away_from_the_book_until_it_arrives():
    engine, clock = make_engine(latency_ns=50)
    engine.process(book())
    order = engine.submit_order("s", SYM, BUY, 1.0)
    assert order.status is OrderStatus.SUBMITTED and not engine.fills
    clock.advance_to(40)
    engine.process(book(ts=40, asks=((105.0, 1.0),)))
    assert not engine.fills
    clock.advance_to(60)
    engine.process(book(ts=60, asks=((107.0, 1.0),)))
    assert order.status is OrderStatus.FILLED
    fill = engine.fills[0]
    # it arrived at 50: it met the book as it stood then (the one stamped 40), and is stamped 50, not 60 or 40
    assert fill.price == 105.0 and fill.ts == 50 and fill.latency_ns == 50 and fill.mid_at_decision == 100.0
    assert fill.slippage_bps == pytest.approx(500.0)


def test_cancel_removes_a_resting_order_and_releases_its_quantity():
    engine, _ = make_engine()
    engine.process(book())
    order = engine.submit_order("s", SYM, BUY, 1.0, OrderType.LIMIT, price=95.0)
    assert engine.cancel_order(order.client_id)
    assert order.status is OrderStatus.CANCELED
    engine.process(trade(1, 90.0, 5.0))
    assert not engine.fills
    assert not engine.cancel_order(order.client_id)


@pytest.mark.parametrize(("kwargs", "rule"), [
    ({"qty": 0.0005}, "lot size: quantity 0.0005 is not a multiple of 0.001"),
    ({"qty": 0.05, "order_type": OrderType.LIMIT, "price": 100.005}, "tick size: price 100.005"),
    ({"qty": 0.05}, "min notional: 0.05 x 100"),
    ({"qty": 1.0, "order_type": OrderType.LIMIT}, "needs a limit price"),
    ({"qty": 1.0, "order_type": OrderType.STOP}, "needs a stop price"),
])
def test_orders_breaking_venue_rules_are_rejected_with_the_rule_and_values(kwargs, rule):
    engine, _ = make_engine()
    engine.process(book())
    order = engine.submit_order("s", SYM, BUY, **kwargs)
    assert order.status is OrderStatus.REJECTED
    assert rule in order.reason
    assert any(rule in message for _, _, message in engine.events)


def test_unknown_symbol_is_rejected():
    engine, _ = make_engine()
    order = engine.submit_order("s", "DOGE/USDT", BUY, 1.0)
    assert order.status is OrderStatus.REJECTED and "unknown symbol 'DOGE/USDT'" in order.reason


def bar(ts, o, h, lo, c, v=10.0) -> Bar:
    return Bar(ts, SYM, "1m", o, h, lo, c, v, ts + 60)


def test_bar_data_fills_market_orders_at_the_next_bars_open():
    engine, clock = make_engine(latency_ns=5)
    clock.advance_to(60)
    engine.process(bar(0, 100, 101, 99, 100.5))
    order = engine.submit_order("s", SYM, BUY, 1.0)
    assert not engine.fills
    clock.advance_to(120)
    engine.process(bar(60, 102, 103, 101, 102.5))
    assert order.status is OrderStatus.FILLED
    fill = engine.fills[0]
    # the bar's open, stamped when the order arrived (60 + 5), never before
    assert (fill.price, fill.basis, fill.ts, fill.mid_at_decision) == (102, FillBasis.BAR_OPEN, 65, 100.5)


def test_bar_data_fills_a_resting_limit_only_when_the_bar_trades_through_it():
    engine, clock = make_engine()
    clock.advance_to(60)
    engine.process(bar(0, 100, 101, 99, 100))
    order = engine.submit_order("s", SYM, BUY, 2.0, OrderType.LIMIT, price=98.0)
    clock.advance_to(120)
    engine.process(bar(60, 100, 100.5, 98.0, 99))  # touches 98 only
    assert not engine.fills
    clock.advance_to(180)
    engine.process(bar(120, 99, 99.5, 97.0, 98.5, v=1.5))  # through 98, but only 1.5 traded
    assert order.filled_qty == 1.5 and engine.fills[0].price == 98.0
    assert engine.fills[0].liquidity is Liquidity.MAKER and engine.fills[0].basis is FillBasis.BAR_RANGE


def test_bar_data_stop_gapping_through_fills_at_the_open():
    engine, clock = make_engine()
    clock.advance_to(60)
    engine.process(bar(0, 100, 101, 99, 100))
    order = engine.submit_order("s", SYM, SELL, 1.0, OrderType.STOP, stop_price=98.0)
    clock.advance_to(120)
    engine.process(bar(60, 95, 96, 94, 95))
    assert order.status is OrderStatus.FILLED and engine.fills[0].price == 95


def test_bar_slippage_worsens_bar_open_fills():
    engine, clock = make_engine(bar_slippage_bps=10.0)
    clock.advance_to(60)
    engine.process(bar(0, 100, 101, 99, 100))
    engine.submit_order("s", SYM, BUY, 1.0)
    clock.advance_to(120)
    engine.process(bar(60, 200, 201, 199, 200))
    assert engine.fills[0].price == 200.2


def test_reduce_only_orders_are_denied_unless_they_reduce():
    engine, _ = make_engine()
    engine.process(book())
    opening = engine.submit_order("s", SYM, SELL, 1.0, reduce_only=True)
    assert opening.status is OrderStatus.DENIED and "would not reduce" in opening.reason
    engine.submit_order("s", SYM, BUY, 1.0)
    too_big = engine.submit_order("s", SYM, SELL, 1.5, reduce_only=True)
    assert too_big.status is OrderStatus.DENIED and "+1" in too_big.reason
    closing = engine.submit_order("s", SYM, SELL, 1.0, reduce_only=True)
    assert closing.status is OrderStatus.FILLED
    assert engine.account.position_qty(SYM) == 0


def test_without_a_book_market_orders_and_triggered_stops_take_from_printed_trades():
    engine, _ = make_engine()
    engine.process(trade(0, 100.0, 1.0))
    order = engine.submit_order("s", SYM, BUY, 1.5)
    stop = engine.submit_order("s", SYM, SELL, 1.0, OrderType.STOP, stop_price=95.0)
    engine.process(trade(1, 100.5, 1.0))
    assert order.filled_qty == 1.0 and engine.fills[0].price == 100.5
    assert engine.fills[0].basis is FillBasis.TRADE and engine.fills[0].liquidity is Liquidity.TAKER
    engine.process(trade(2, 100.7, 2.0))
    assert order.status is OrderStatus.FILLED and engine.fills[1].qty == 0.5
    engine.process(trade(3, 94.0, 5.0))  # triggers the stop; the trade that triggers it cannot also fill it
    assert stop.status is OrderStatus.TRIGGERED
    engine.process(trade(4, 93.5, 0.4))
    assert stop.status is OrderStatus.PARTIALLY_FILLED and engine.fills[-1].price == 93.5


def test_a_trade_used_up_by_earlier_orders_still_triggers_later_stops():
    engine, _ = make_engine()
    engine.process(book())
    limit = engine.submit_order("s", SYM, BUY, 1.0, OrderType.LIMIT, price=98.5)
    stop = engine.submit_order("s", SYM, SELL, 1.0, OrderType.STOP, stop_price=98.2)
    engine.process(trade(1, 98.0, 0.5))  # fills 0.5 of the limit, nothing left of the trade for anyone else
    assert limit.filled_qty == 0.5
    assert stop.status is not OrderStatus.ACCEPTED  # triggered all the same, then took the book
    assert stop.status is OrderStatus.FILLED and engine.fills[-1].price == 99.0
