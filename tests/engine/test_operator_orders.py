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


def test_each_snapshot_adds_the_lines_logged_since_the_last_and_keeps_the_newest_n():
    """The event log is built on from the last snapshot: it must be what merging the whole log would give."""
    desk = Desk(strategies={"a": ["BTC/USDT"], "b": ["ETH/USDT"]})
    engine = desk.engine

    def whole_log(n: int) -> list[tuple[int, str, str]]:
        lines = [(seq, "engine", text) for seq, (_, _, text) in zip(engine.event_seqs, engine.events, strict=True)]
        lines += [(seq, "order", event.client_id) for seq, event in engine.order_flow]
        return sorted(lines)[-n:]

    seen = []
    for round_ in range(12):  # a round with no new line, then rounds past n lines in all
        if round_ % 4:
            desk.buy("a", "BTC/USDT", 1.0)
            desk.tick(1)
            desk.sell("a", "BTC/USDT", 1.0)
            desk.buy("b", "ETH/USDT", 2.0, price=45.0)
            engine.log_event("INFO", f"round {round_}")
        log = take_snapshot(engine, n_events=8).event_log
        assert [line.seq for line in log] == [seq for seq, _, _ in whole_log(8)]
        assert [line.text for line in log if line.kind == "engine"] == [
            text for _, kind, text in whole_log(8) if kind == "engine"]
        assert all(client_id in line.text for line, (_, kind, client_id) in zip(log, whole_log(8), strict=True)
                   if kind == "order")
        seen.append(len(log))
    assert seen[-1] == 8 and take_snapshot(engine, n_events=300).event_log[-8:] == log  # another length: its own
