"""Money must reconcile: cash moves by exactly the fills' cash flows and fees, to the quote's precision."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import SimClock
from engine.core import Engine
from engine.model.fill import Fill, FillBasis, Liquidity
from engine.model.market import BookSnapshot
from engine.model.order import OrderSide
from engine.portfolio.account import Account
from tests.conftest import btc

HALF_CENT = Decimal("0.005")

fills_strategy = st.lists(
    st.tuples(st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
              st.integers(1, 5000),  # lots of 0.001
              st.integers(100_000, 9_000_000),  # ticks of 0.01
              st.sampled_from(["MAKER", "TAKER"]),
              st.sampled_from(["a", "b"])),
    min_size=1, max_size=60)


def make_fill(i, side, lots, ticks, liquidity, strategy) -> Fill:
    inst = btc()
    qty = round(lots * 0.001, 3)
    price = round(ticks * 0.01, 2)
    rate = inst.maker_fee if liquidity == "MAKER" else inst.taker_fee
    return Fill(f"F{i}", f"O{i}", strategy, inst.symbol, side, qty, price, qty * price * rate, Liquidity(liquidity),
                i, FillBasis.BOOK, qty, 0, price, 0.0)


def exact(x: float) -> Decimal:
    return Decimal(repr(x))


@settings(max_examples=300, deadline=None)
@given(fills_strategy, st.integers(100_000, 9_000_000))
def test_cash_equity_and_positions_reconcile(raw, mark_ticks):
    account = Account(1_000_000.0)
    fills = [make_fill(i, *r) for i, r in enumerate(raw)]
    for fill in fills:
        account.apply_fill(fill)
    mark = round(mark_ticks * 0.01, 2)
    account.marks["BTC/USDT"] = mark

    expected_cash = Decimal(1_000_000) + sum(
        (-f.side * exact(f.qty) * exact(f.price) - exact(f.fee) for f in fills), Decimal(0))
    assert abs(Decimal(account.cash) - expected_cash) <= HALF_CENT

    expected_qty = sum((f.side * exact(f.qty) for f in fills), Decimal(0))
    assert abs(Decimal(account.position_qty("BTC/USDT")) - expected_qty) < Decimal("1e-9")
    per_strategy = sum(account.strategy_qty.values())
    assert abs(Decimal(per_strategy) - expected_qty) < Decimal("1e-9")

    # equity change = realised + unrealised - fees: P&L and cash tell the same story
    equity_change = Decimal(account.equity()) - Decimal(1_000_000)
    pnl = Decimal(account.realised_pnl()) + Decimal(account.unrealised_pnl()) - Decimal(account.fees_paid)
    assert abs(equity_change - pnl) <= HALF_CENT
    # and equity is cash plus the marked position, computed independently
    assert abs(Decimal(account.equity()) - (expected_cash + expected_qty * exact(mark))) <= HALF_CENT


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([OrderSide.BUY, OrderSide.SELL]), st.integers(10, 3000)),
                min_size=1, max_size=25),
       st.integers(0, 2**31))
def test_orders_through_the_simulated_venue_reconcile(orders, seed):
    """Market orders walking random books: the engine's cash equals start plus every fill's flow."""
    import random

    rng = random.Random(seed)
    clock = SimClock()
    engine = Engine(clock, [btc()], 1_000_000.0)
    for n, (side, lots) in enumerate(orders, start=1):
        clock.advance_to(n)
        mid = rng.randint(2_000_000, 4_000_000) / 100
        bids = tuple((round(mid - 0.5 - k * 0.25, 2), rng.randint(1, 800) / 1000) for k in range(5))
        asks = tuple((round(mid + 0.5 + k * 0.25, 2), rng.randint(1, 800) / 1000) for k in range(5))
        engine.process(BookSnapshot(n, "BTC/USDT", bids, asks))
        engine.submit_order("s", "BTC/USDT", side, round(lots * 0.001, 3))
    account = engine.account
    expected_cash = Decimal(1_000_000) + sum(
        (-f.side * exact(f.qty) * exact(f.price) - exact(f.fee) for f in engine.fills), Decimal(0))
    assert abs(Decimal(account.cash) - expected_cash) <= HALF_CENT
    for order in engine.orders.values():
        filled = sum(f.qty for f in engine.fills if f.client_id == order.client_id)
        assert abs(filled - order.filled_qty) < 1e-9
        assert not order.is_open  # market orders either fill or cancel their remainder
    assert abs(account.position_qty("BTC/USDT") - sum(f.side * f.qty for f in engine.fills)) < 1e-9
