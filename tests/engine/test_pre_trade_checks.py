"""Every pre-trade check refuses what breaks it, and says which rule, which limit and what value."""

import random

import pytest

from engine.model.order import OrderStatus
from tests.engine.risk_helpers import Desk, risk


def denial(desk: Desk):
    order = desk.last_order()
    assert order.status is OrderStatus.DENIED, (order.status, order.reason)
    return order.denial


@pytest.mark.parametrize(("limits", "qty", "rule", "limit", "value"), [
    ({"max_order_qty": {"BTC/USDT": 5.0}}, 6.0, "max_order_qty", 5.0, 6.0),
    ({"max_order_notional": 500.0}, 6.0, "max_order_notional", 500.0, 600.0),
    ({"max_position_qty": {"BTC/USDT": 5.0}}, 6.0, "max_position_qty", 5.0, 6.0),
    ({"max_position_notional": 500.0}, 6.0, "max_position_notional", 500.0, 600.0),
    ({"max_gross_exposure": 0.005}, 6.0, "max_gross_exposure", 0.005, 0.006),
    ({"max_net_exposure": 0.005}, 6.0, "max_net_exposure", 0.005, 0.006),
])
def test_a_limit_refuses_the_order_that_breaks_it_and_records_rule_limit_value(limits, qty, rule, limit, value):
    desk = Desk(risk(**limits))
    desk.buy("a", "BTC/USDT", qty)
    d = denial(desk)
    assert (d.rule, d.limit) == (rule, limit)
    assert d.value == pytest.approx(value, rel=1e-3)
    assert desk.held("a") == 0.0
    assert desk.denied_rows()[-1][0] == rule and desk.denied_rows()[-1][2] == limit
    rejection = desk.audit("rejection")[-1]
    assert rejection["rule"] == rule and rejection["limit"] == limit
    desk.buy("a", "BTC/USDT", 1.0)  # within every limit: goes through
    assert desk.held("a") == 1.0


def test_open_orders_count_toward_position_limits():
    desk = Desk(risk(max_position_qty={"BTC/USDT": 5.0}))
    desk.buy("a", "BTC/USDT", 3.0, price=90.0)  # rests below the market
    desk.buy("a", "BTC/USDT", 3.0, price=90.0)
    assert denial(desk).rule == "max_position_qty" and denial(desk).value == 6.0


def test_exits_pass_even_beyond_exposure_limits():
    desk = Desk(risk(max_gross_exposure=0.02))
    desk.buy("a", "BTC/USDT", 10.0)   # 1000 of 100000
    desk.tick(BTC=300.0)               # the price move takes exposure past the limit
    desk.buy("a", "BTC/USDT", 1.0)
    assert denial(desk).rule == "max_gross_exposure"
    desk.sell("a", "BTC/USDT", 4.0)
    assert desk.held("a") == 6.0


def test_max_open_positions_and_trades_per_day():
    desk = Desk(risk(max_open_positions=1, max_trades_per_day=3))
    desk.buy("a", "BTC/USDT", 1.0)
    desk.strategies["a"].symbols.append("ETH/USDT")
    desk.buy("a", "ETH/USDT", 1.0)
    assert denial(desk).rule == "max_open_positions" and denial(desk).value == 2
    desk.buy("a", "BTC/USDT", 1.0)
    desk.buy("a", "BTC/USDT", 1.0)
    desk.buy("a", "BTC/USDT", 1.0)
    d = denial(desk)
    assert (d.rule, d.limit, d.value) == ("max_trades_per_day", 3, 4)
    desk.tick(86_400)  # the next UTC day of market time
    desk.buy("a", "BTC/USDT", 1.0)
    assert desk.held("a") == 4.0


def test_submit_rate_is_throttled_per_second_of_market_time():
    desk = Desk(risk(max_submit_rate=3.0))
    for _ in range(3):
        desk.buy("a", "BTC/USDT", 0.1, price=90.0)
    desk.buy("a", "BTC/USDT", 0.1, price=90.0)
    d = denial(desk)
    assert (d.rule, d.limit, d.value) == ("submit_rate", 3.0, 4)
    desk.tick(1.0)
    desk.buy("a", "BTC/USDT", 0.1, price=90.0)
    assert desk.last_order().status is OrderStatus.ACCEPTED


def test_the_submit_window_keeps_one_second_of_orders_with_or_without_a_limit():
    """It counted every order of the session when no rate was set: 250 orders a second under load, for 14 days."""
    for limit in (None, 1000.0):
        desk = Desk(risk(max_submit_rate=limit))
        for _ in range(5):
            for _ in range(4):
                desk.buy("a", "BTC/USDT", 0.1, price=90.0)
            desk.tick(0.5)
        # the newest order's last second: the rounds 0.5 s apart at its time and before, not the three older ones
        assert len(desk.risk.checks._submits) == 8, limit


def test_reduce_only_cannot_increase():
    desk = Desk()
    desk.buy("a", "BTC/USDT", 1.0)
    desk.sell("a", "BTC/USDT", 2.0, reduce_only=True)
    assert denial(desk).rule == "reduce_only"
    desk.sell("a", "BTC/USDT", 1.0, reduce_only=True)
    assert desk.held("a") == 0.0


def test_cash_and_short_margin():
    desk = Desk(risk(max_short_exposure=0.5), cash=1000.0)
    desk.buy("a", "BTC/USDT", 11.0)
    d = denial(desk)
    assert d.rule == "cash" and d.limit == pytest.approx(1000.0) and d.value > 1000.0
    desk.buy("a", "BTC/USDT", 5.0, price=99.0)   # rests: its cash is reserved
    desk.buy("a", "BTC/USDT", 6.0)
    assert denial(desk).rule == "cash"
    desk2 = Desk(risk(max_short_exposure=0.5), cash=1000.0)
    desk2.sell("a", "BTC/USDT", 6.0)
    d = denial(desk2)
    assert (d.rule, d.limit) == ("margin", 0.5) and d.value == pytest.approx(0.6, rel=1e-3)


def correlated_desk(limits) -> Desk:
    desk = Desk(risk(sample_seconds=60.0, min_samples=20, **limits), strategies={"a": ["BTC/USDT", "ETH/USDT"]})
    rng = random.Random(5)
    for _ in range(40):
        r = rng.gauss(0, 0.01)
        desk.tick(60.0, BTC=desk.prices["BTC/USDT"] * (1 + r), ETH=desk.prices["ETH/USDT"] * (1 + r * 0.9))
    return desk


def test_correlation_limit_refuses_a_new_position_that_moves_with_a_held_one():
    desk = correlated_desk({"correlation_limit": 0.7})
    desk.buy("a", "BTC/USDT", 1.0)
    desk.buy("a", "ETH/USDT", 1.0)
    d = denial(desk)
    assert d.rule == "correlation" and d.limit == 0.7 and d.value > 0.99
    desk.sell("a", "ETH/USDT", 1.0)  # the opposite direction hedges instead: allowed
    assert desk.held("a", "ETH/USDT") == -1.0


def test_var_limit_includes_the_new_order():
    desk = correlated_desk({"var_limit": 0.01, "var_horizon_seconds": 86_400.0})
    desk.buy("a", "BTC/USDT", 10.0)   # small: VaR well inside 1% of equity
    assert desk.held("a") == 10.0
    desk.buy("a", "BTC/USDT", 400.0)
    d = denial(desk)
    assert d.rule == "var" and d.limit == 0.01 and d.value > 0.01
