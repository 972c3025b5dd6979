"""Position sizing modes, progressive risk phases, and brackets (stop-loss / take-profit OCO, trailing stops)."""

import pytest

from engine.config import ExitsConfig, PhaseConfig, SizingConfig
from engine.model.order import Denial, OrderStatus, OrderType
from engine.risk.manager import StrategyRules
from tests.engine.risk_helpers import Desk


def sized(sizing: SizingConfig, exits: ExitsConfig | None = None, **kw) -> Desk:
    return Desk(rules={"a": StrategyRules(sizing, exits or ExitsConfig())}, **kw)


def test_strategy_mode_keeps_the_strategys_quantity_and_fixed_replaces_it():
    desk = sized(SizingConfig())
    desk.target("a", "BTC/USDT", 3.0)
    assert desk.held("a") == 3.0
    desk = sized(SizingConfig(mode="fixed", qty=2.0))
    desk.target("a", "BTC/USDT", 3.0)
    assert desk.held("a") == 2.0
    desk.target("a", "BTC/USDT", -3.0)   # the sign is the strategy's, the size the sizer's
    assert desk.held("a") == -2.0
    desk.target("a", "BTC/USDT", 0.0)    # exits are never resized
    assert desk.held("a") == 0.0


def test_fraction_of_equity():
    desk = sized(SizingConfig(mode="fraction", fraction=0.05))
    desk.target("a", "BTC/USDT", 1.0)
    assert desk.held("a") == pytest.approx(50.0)   # 5% of 100 000 at 100


def test_risk_per_trade_needs_a_stop_and_sizes_by_its_distance():
    desk = sized(SizingConfig(mode="risk", risk=0.01))
    desk.target("a", "BTC/USDT", 1.0)
    assert desk.held("a") == 0.0
    rule, reason, *_ = desk.denied_rows()[-1]
    assert rule == "sizing" and "needs a stop" in reason
    desk.target("a", "BTC/USDT", 1.0, stop_loss=95.0)
    assert desk.held("a") == pytest.approx(200.0)  # 1000 at risk over a 5.0 stop distance
    desk = sized(SizingConfig(mode="risk", risk=0.01), ExitsConfig(stop_loss_pct=0.02))
    desk.buy("a", "BTC/USDT", 1.0)
    assert desk.held("a") == pytest.approx(500.0)  # 1000 over 2.0


def test_atr_targets_volatility():
    from engine.model.market import Bar

    desk = sized(SizingConfig(mode="atr", risk=0.01, atr_period=3, atr_multiple=2.0))
    start = desk.clock.now_ns()
    for i in range(1, 5):
        end = start + i * 60 * 10**9
        desk.clock.advance_to(end)
        desk.engine.process(Bar(end - 60 * 10**9, "BTC/USDT", "1m", 100, 102, 98, 100, 5.0, end))
    desk.target("a", "BTC/USDT", 1.0)
    assert desk.risk._atr[("BTC/USDT", "1m")].value == pytest.approx(4.0)
    assert desk.held("a") == pytest.approx(125.0)  # 1000 / (2 x 4)


def test_kelly_sizes_from_the_strategys_own_trades_and_stops_without_an_edge():
    desk = sized(SizingConfig(mode="kelly", fraction=0.01, kelly_fraction=0.5, kelly_cap=0.2, kelly_min_trades=4))
    desk.target("a", "BTC/USDT", 1.0)
    assert desk.held("a") == pytest.approx(10.0)  # too few trades: `fraction`
    for win in (True, True, True, False):
        desk.tick(BTC=104.0 if win else 96.0)
        desk.target("a", "BTC/USDT", 0.0)
        desk.tick(BTC=100.0)
        desk.target("a", "BTC/USDT", 1.0)
    stats = desk.risk.trips.of("a")
    assert (stats.wins, stats.losses) == (3, 1)
    full = stats.kelly()
    assert desk.held("a") == pytest.approx(min(0.5 * full, 0.2) * desk.engine.account.equity() / 100.0, rel=0.01)
    for _ in range(6):  # now lose: the edge goes
        desk.tick(BTC=90.0)
        desk.target("a", "BTC/USDT", 0.0)
        desk.tick(BTC=100.0)
        desk.target("a", "BTC/USDT", 1.0)
    assert desk.risk.trips.of("a").kelly() < 0
    assert desk.held("a") == 0.0
    assert desk.denied_rows()[-1][0] == "sizing"


def test_a_risk_phase_caps_sizing_and_symbols_and_advancing_is_an_audited_command():
    phases = (PhaseConfig(phase=1, risk_per_trade=0.001, max_exposure=0.02, max_symbols=1),
              PhaseConfig(phase=2, risk_per_trade=0.0025, max_exposure=0.05, max_symbols=2))
    desk = Desk(strategies={"a": ["BTC/USDT", "ETH/USDT"]}, phases=phases,
                rules={"a": StrategyRules(phase=1)})
    desk.target("a", "BTC/USDT", 100.0)            # 10% asked, 2% allowed
    assert desk.held("a") == pytest.approx(20.0)
    desk.target("a", "ETH/USDT", 10.0)
    assert desk.held("a", "ETH/USDT") == 0.0
    assert desk.denied_rows()[-1][0] == "phase_symbols"
    desk.target("a", "BTC/USDT", 100.0, stop_loss=99.0)   # the stop: 0.1% of equity at risk over 1.0
    assert desk.held("a") == pytest.approx(20.0)
    ok, line = desk.engine.command("phase", {"strategy": "a", "phase": 2}, "a week clean", desk.clock.now_ns())
    assert ok and "1 -> 2" in line
    assert any("risk phase 1 -> 2" in p["cause"] for p in desk.audit("state"))
    desk.target("a", "ETH/USDT", 10.0)
    assert desk.held("a", "ETH/USDT") == 10.0
    ok, line = desk.engine.command("phase", {"strategy": "a", "phase": 7}, "", desk.clock.now_ns())
    assert not ok and "defined phase" in line


def test_stop_loss_and_take_profit_bracket_the_position_and_cancel_each_other():
    desk = Desk()
    desk.target("a", "BTC/USDT", 2.0, stop_loss=95.0, take_profit=110.0)
    children = [o for o in desk.engine.open_orders() if o.origin == "exit"]
    assert sorted((o.type, o.qty, o.price or o.stop_price) for o in children) == [
        (OrderType.LIMIT, 2.0, 110.0), (OrderType.STOP, 2.0, 95.0)]
    desk.tick(BTC=111.0)                              # the take-profit fills ...
    assert desk.held("a") == 0.0
    stop = next(o for o in children if o.type is OrderType.STOP)
    assert stop.status is OrderStatus.CANCELED        # ... and cancels the stop
    assert not desk.engine.open_orders()


def test_the_stop_follows_the_position_when_the_strategy_exits_part_of_it():
    desk = Desk(rules={"a": StrategyRules(exits=ExitsConfig(stop_loss_pct=0.05))})
    desk.target("a", "BTC/USDT", 4.0)
    stop = next(o for o in desk.engine.open_orders() if o.origin == "exit")
    entry = desk.engine.orders["O0000001"].avg_fill_price  # bought at the ask
    assert (stop.qty, stop.stop_price) == (4.0, round(entry * 0.95, 2))
    desk.target("a", "BTC/USDT", 1.0)                 # the strategy sells 3 itself
    stops = [o for o in desk.engine.open_orders() if o.origin == "exit"]
    assert [s.qty for s in stops] == [1.0] and stop.status is OrderStatus.CANCELED
    desk.tick(BTC=94.0)                               # the stop triggers and closes the rest
    assert desk.held("a") == 0.0 and not desk.engine.open_orders()


def test_a_trailing_stop_exits_when_the_price_falls_back_from_its_best():
    desk = Desk(rules={"a": StrategyRules(exits=ExitsConfig(trailing_pct=0.05))})
    desk.target("a", "BTC/USDT", 1.0)
    for price in (104.0, 110.0, 106.0):               # best 110; 5% below is 104.5
        desk.tick(BTC=price)
    assert desk.held("a") == 1.0
    desk.tick(BTC=104.0)
    assert desk.held("a") == 0.0
    exit_order = desk.last_order()
    assert exit_order.origin == "flatten" and "trailing stop" in exit_order.reason
    assert exit_order.status is OrderStatus.FILLED


def test_brackets_do_not_count_as_the_strategys_pending_exits():
    desk = Desk(rules={"a": StrategyRules(exits=ExitsConfig(stop_loss_pct=0.05, take_profit_pct=0.05))})
    desk.target("a", "BTC/USDT", 2.0)
    desk.target("a", "BTC/USDT", 2.0)                 # unchanged target: no new order despite the two children
    assert len([o for o in desk.engine.orders.values() if o.origin == "strategy"]) == 1
    assert desk.engine.oms.pending_qty(("a", "BTC/USDT")) == 0.0


def test_an_exit_for_a_position_summed_from_fills_is_not_refused_over_float_dust():
    desk = Desk(rules={"a": StrategyRules(exits=ExitsConfig(trailing_pct=0.05))})
    desk.buy("a", "BTC/USDT", 0.1)
    desk.buy("a", "BTC/USDT", 0.2)
    assert desk.held("a") != 0.3                       # 0.30000000000000004
    desk.tick(BTC=110.0)
    desk.tick(BTC=100.0)
    assert desk.held("a") == 0.0
    assert not [o for o in desk.engine.orders.values() if o.status is OrderStatus.DENIED]


def test_a_refused_trailing_exit_is_dropped_with_a_warning_not_retried_on_every_price():
    desk = Desk(rules={"a": StrategyRules(exits=ExitsConfig(trailing_pct=0.05))}, strategies={"a": ["BTC/USDT"]})
    desk.target("a", "BTC/USDT", 1.0)
    desk.tick(BTC=110.0)
    desk.risk.check = lambda order: Denial("test", None, None, "refused for the test")
    for price in (100.0, 99.0, 98.0, 97.0):
        desk.tick(BTC=price)
    denied = [o for o in desk.engine.orders.values() if o.status is OrderStatus.DENIED]
    assert len(denied) == 1
    assert any("trailing stop for a BTC/USDT dropped" in message for _, _, message in desk.engine.events)


def test_an_entry_sized_under_one_lot_is_recorded_as_a_sizing_denial():
    desk = sized(SizingConfig(mode="fraction", fraction=0.0000001))   # 0.01 of equity -> 0.0001 BTC < lot 0.001
    desk.buy("a", "BTC/USDT", 1.0)
    assert desk.held("a") == 0.0 and not desk.engine.orders
    rule, reason, limit, value = desk.denied_rows()[-1]
    assert rule == "sizing" and "under one lot" in reason and limit == 0.001 and value == pytest.approx(0.0001)


def test_a_trailing_exit_in_flight_is_pending_so_the_strategys_own_exit_cannot_double_it():
    desk = Desk(rules={"a": StrategyRules(exits=ExitsConfig(trailing_pct=0.05))}, latency_ms=2000.0)
    desk.target("a", "BTC/USDT", 1.0)
    desk.tick(3.0)
    assert desk.held("a") == 1.0
    desk.tick(1.0, BTC=110.0)
    desk.tick(1.0, BTC=104.0)                         # the trailing exit leaves; it arrives in 2 s
    assert desk.engine.oms.pending_qty(("a", "BTC/USDT")) == -1.0
    desk.target("a", "BTC/USDT", 0.0)                 # the strategy wants out too: nothing more to send
    desk.tick(3.0)
    assert desk.held("a") == 0.0
    assert len([o for o in desk.engine.orders.values() if o.side < 0 and o.status is OrderStatus.FILLED]) == 1


def test_a_refused_entry_leaves_no_bracket_behind():
    from tests.engine.risk_helpers import risk

    desk = Desk(risk(max_order_qty={"BTC/USDT": 1.0}),
                rules={"a": StrategyRules(exits=ExitsConfig(trailing_pct=0.05, stop_loss_pct=0.05))})
    desk.target("a", "BTC/USDT", 2.0)
    assert desk.last_order().status is OrderStatus.DENIED
    assert not desk.engine.oms.brackets.by_key
