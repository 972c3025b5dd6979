"""The operator's order commands (cancel an order, cancel a strategy's orders, flatten a symbol) and what the
console's snapshot says about orders, strategies, quotes, the event log and the chart's markers."""

from __future__ import annotations

from engine.model.order import OrderOrigin, OrderStatus
from engine.snapshot import take_snapshot
from tests.engine.risk_helpers import Desk


def test_cancel_one_order_then_every_order_of_a_strategy():
    desk = Desk(strategies={"a": ["BTC/USDT"], "b": ["ETH/USDT"]})
    desk.buy("a", "BTC/USDT", 1.0, price=90.0)
    first = desk.last_order()
    desk.buy("a", "BTC/USDT", 1.0, price=91.0)
    second = desk.last_order()
    desk.buy("b", "ETH/USDT", 1.0, price=40.0)
    other = desk.last_order()
    desk.tick(1)
    now = desk.clock.now_ns

    ok, line = desk.engine.command("cancel", {"order": first.client_id}, "", now())
    assert ok and first.client_id in line and first.status is OrderStatus.CANCELED
    assert second.is_open and other.is_open
    ok, line = desk.engine.command("cancel", {"order": first.client_id}, "", now())
    assert not ok and "not open" in line

    ok, line = desk.engine.command("cancel", {"strategy": "a"}, "", now())
    assert ok and "1 open order" in line
    assert second.status is OrderStatus.CANCELED and other.is_open  # the other strategy's order stays
    ok, line = desk.engine.command("cancel", {"strategy": "nobody"}, "", now())
    assert not ok and "no strategy named 'nobody'" in line


def test_flatten_closes_every_strategy_in_that_symbol_only():
    desk = Desk(strategies={"a": ["BTC/USDT", "ETH/USDT"], "b": ["BTC/USDT"]})
    desk.buy("a", "BTC/USDT", 1.0)
    desk.sell("b", "BTC/USDT", 0.5)
    desk.buy("a", "ETH/USDT", 2.0)
    desk.tick(1)
    assert desk.held("a") == 1.0 and desk.held("b") == -0.5

    ok, line = desk.engine.command("flatten", {"symbol": "BTC/USDT"}, "", desk.clock.now_ns())
    assert ok and "closing 2 position(s)" in line
    desk.tick(1)
    assert desk.held("a") == 0.0 and desk.held("b") == 0.0 and desk.held("a", "ETH/USDT") == 2.0
    closes = [o for o in desk.engine.orders.values() if o.origin is OrderOrigin.FLATTEN]
    assert {(o.strategy, o.symbol) for o in closes} == {("a", "BTC/USDT"), ("b", "BTC/USDT")}
    assert desk.engine.command("flatten", {"symbol": "XRP/USDT"}, "", desk.clock.now_ns())[0] is False


def test_snapshot_has_open_orders_strategy_pnl_quotes_the_event_log_and_markers():
    desk = Desk(strategies={"a": ["BTC/USDT"], "b": ["ETH/USDT"]})
    desk.buy("a", "BTC/USDT", 1.0)
    desk.tick(1)
    desk.tick(1, BTC=110.0)
    desk.sell("a", "BTC/USDT", 1.0)  # a round trip won: bought about 100, sold about 110
    desk.buy("b", "ETH/USDT", 2.0, price=45.0)
    resting = desk.last_order()
    desk.tick(1)
    desk.engine.command("halt", {"strategy": "b"}, "look at it", desk.clock.now_ns())
    desk.engine.command("emergency-stop", {}, "drill", desk.clock.now_ns())
    snap = take_snapshot(desk.engine)

    a, b = snap.strategies
    assert (a.trades, a.wins, a.win_rate, a.positions) == (1, 1, 1.0, ())
    fills = [f for f in desk.engine.fills if f.strategy == "a"]
    by_hand = sum(-f.side * f.qty * f.price - f.fee for f in fills)
    assert abs(a.pnl - by_hand) < 1e-9
    assert a.state == b.state == "EMERGENCY_STOPPED"  # the portfolio's latch is tighter than b's own halt
    assert [o.client_id for o in snap.open_order_list] == [] and resting.status is OrderStatus.CANCELED
    quotes = {q.symbol: q for q in snap.quotes}
    assert quotes["BTC/USDT"].last == 110.0 and quotes["BTC/USDT"].spread is not None
    assert [what for _, what in snap.markers] == ["EMERGENCY_STOPPED"]
    seqs = [e.seq for e in snap.event_log]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    kinds = {e.kind for e in snap.event_log}
    assert {"order", "fill", "engine"} <= kinds
    assert any(e.kind == "engine" and "EMERGENCY_STOPPED" in e.text for e in snap.event_log)


def test_an_operator_flatten_is_labelled_the_operators_whatever_its_reason_says():
    from engine.model.decision import decision_origin

    desk = Desk()
    desk.buy("a", "BTC/USDT", 1.0)
    desk.tick(1)
    ok, _ = desk.engine.command("flatten", {"symbol": "BTC/USDT"}, "drawdown: I do not like it", desk.clock.now_ns())
    assert ok
    exits = [d for d in desk.engine.decisions if decision_origin(d.reason) != "strategy"]
    assert [decision_origin(d.reason) for d in exits] == ["operator flatten"]
