import pytest

from engine.model.order import (
    OPEN_STATUSES,
    TRANSITIONS,
    IllegalOrderTransition,
    Order,
    OrderSide,
    OrderStatus,
)

S = OrderStatus


def order(qty: float = 1.0) -> Order:
    return Order("O1", "s", "BTC/USDT", OrderSide.BUY, qty)


def test_the_ordinary_life_of_an_order():
    o = order(2.0)
    for status in (S.SUBMITTED, S.ACCEPTED):
        o.transition(status)
    o.apply_fill(0.5, 100.0)
    assert o.status is S.PARTIALLY_FILLED
    o.apply_fill(0.5, 102.0)
    assert o.status is S.PARTIALLY_FILLED and o.filled_qty == 1.0 and o.avg_fill_price == 101.0
    o.apply_fill(1.0, 104.0)
    assert o.status is S.FILLED and o.remaining == 0 and o.avg_fill_price == pytest.approx(102.5)
    assert not o.is_open


@pytest.mark.parametrize("start", list(S))
def test_every_transition_outside_the_table_raises_and_changes_nothing(start):
    for target in S:
        o = order()
        o.status = start
        if target in TRANSITIONS[start]:
            o.transition(target)
            assert o.status is target
        else:
            with pytest.raises(IllegalOrderTransition) as info:
                o.transition(target)
            assert o.status is start
            assert start.value in str(info.value) and target.value in str(info.value)


def test_terminal_states_have_no_exit_except_the_cancel_fill_race():
    for terminal in (S.DENIED, S.REJECTED, S.EXPIRED, S.FILLED):
        assert TRANSITIONS[terminal] == frozenset()
    assert TRANSITIONS[S.CANCELED] == frozenset({S.FILLED})
    assert S.CANCELED not in OPEN_STATUSES and S.FILLED not in OPEN_STATUSES


def test_a_fill_that_races_a_cancel_completes_the_order():
    o = order()
    o.transition(S.SUBMITTED)
    o.transition(S.ACCEPTED)
    o.transition(S.PENDING_CANCEL)
    o.transition(S.CANCELED)
    o.apply_fill(1.0, 100.0)
    assert o.status is S.FILLED


def test_a_late_partial_fill_after_cancel_counts_but_the_order_stays_canceled():
    o = order(2.0)
    for status in (S.SUBMITTED, S.ACCEPTED, S.CANCELED):
        o.transition(status)
    o.apply_fill(0.5, 100.0)
    assert o.status is S.CANCELED and o.filled_qty == 0.5


def test_overfill_is_refused():
    o = order(1.0)
    o.transition(S.SUBMITTED)
    o.transition(S.ACCEPTED)
    with pytest.raises(ValueError, match="exceeds remaining"):
        o.apply_fill(1.5, 100.0)
    assert o.filled_qty == 0 and o.status is S.ACCEPTED
