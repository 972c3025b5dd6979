"""Performance metrics agree with empyrical-reloaded (an independent oracle) on the same returns."""

import math

import empyrical
import numpy as np
import pytest

from engine.analytics.returns import DAY_NS, period_returns, return_metrics
from engine.analytics.trades import attribution, closed_trades, trade_metrics
from engine.model.fill import Fill, FillBasis, Liquidity
from engine.model.order import OrderSide

REL = 1e-9


def series(seed: int, n: int, drift: float = 0.0005, vol: float = 0.02) -> np.ndarray:
    return np.random.default_rng(seed).normal(drift, vol, n)


@pytest.mark.parametrize(("seed", "n", "ppy", "rf"), [(1, 400, 365, 0.0), (2, 60, 252, 0.03), (3, 2000, 8760, 0.05),
                                                      (4, 3, 365, 0.0)])
def test_return_metrics_match_empyrical(seed, n, ppy, rf):
    r = series(seed, n)
    rf_period = (1 + rf) ** (1 / ppy) - 1
    m = return_metrics(r, ppy, rf)
    oracle = {
        "total_return": empyrical.cum_returns_final(r),
        "annual_return": empyrical.annual_return(r, annualization=ppy),
        "annual_volatility": empyrical.annual_volatility(r, annualization=ppy),
        "sharpe": empyrical.sharpe_ratio(r, risk_free=rf_period, annualization=ppy),
        "sortino": empyrical.sortino_ratio(r, required_return=rf_period, annualization=ppy),
        "max_drawdown": empyrical.max_drawdown(r),
        "calmar": empyrical.calmar_ratio(r, annualization=ppy),
        "var_95": empyrical.value_at_risk(r, cutoff=0.05),
        "cvar_95": empyrical.conditional_value_at_risk(r, cutoff=0.05),
    }
    for name, expected in oracle.items():
        assert getattr(m, name) == pytest.approx(float(expected), rel=REL, abs=1e-15), name
    assert m.periods == n


def test_parametric_var_and_drawdown_duration_by_hand():
    r = np.array([0.10, -0.05, -0.05, 0.02, 0.20, -0.01])
    m = return_metrics(r, 365)
    assert m.parametric_var_95 == pytest.approx(r.mean() - 1.6448536269514722 * r.std(ddof=1), rel=1e-12)
    assert m.max_drawdown_periods == 3          # below the 1.10 peak for three periods, then a new peak
    assert m.max_drawdown == pytest.approx(1.10 * 0.95 * 0.95 / 1.10 - 1)


def test_undefined_metrics_are_nan_not_errors():
    empty = return_metrics(np.empty(0))
    assert empty.periods == 0 and math.isnan(empty.sharpe) and empty.max_drawdown == 0.0
    one = return_metrics(np.array([0.01]))
    assert math.isnan(one.sharpe) and math.isnan(one.annual_volatility) and one.total_return == pytest.approx(0.01)
    flat = return_metrics(np.zeros(10))
    assert math.isnan(flat.sharpe) and math.isnan(flat.sortino) and math.isnan(flat.calmar)


def test_period_returns_take_each_utc_days_last_equity_and_carry_quiet_days():
    day = DAY_NS
    points = [(0, 100.0), (day // 2, 104.0), (day - 1, 110.0), (day + 5, 99.0), (3 * day + 1, 121.0)]
    r = period_returns(points, day)
    assert r == pytest.approx([0.10, 0.99 / 1.10 - 1, 0.0, 121 / 99 - 1])
    assert len(period_returns([(0, 100.0)], day)) == 0


def fill(n, strategy, symbol, side, qty, price, fee=0.0, ts=0):
    return Fill(f"F{n}", f"O{n}", strategy, symbol, side, qty, price, fee, Liquidity.TAKER, ts, FillBasis.BOOK, 1.0,
                0, price, 0.0)


def test_closed_trades_statistics_and_attribution():
    hour = 3_600 * 10**9
    fills = [
        fill(1, "a", "BTC/USDT", OrderSide.BUY, 1.0, 100.0, fee=1.0, ts=1 * hour),
        fill(2, "a", "BTC/USDT", OrderSide.SELL, 1.0, 110.0, fee=1.0, ts=2 * hour),     # long +8
        fill(3, "b", "ETH/USDT", OrderSide.SELL, 2.0, 50.0, ts=3 * hour),
        fill(4, "b", "ETH/USDT", OrderSide.BUY, 3.0, 55.0, ts=4 * hour),                # short -10, flips long 1
        fill(5, "b", "ETH/USDT", OrderSide.SELL, 1.0, 52.0, ts=5 * hour),                # long -3
    ]
    trades = closed_trades(fills)
    assert [(t.strategy, t.side, t.pnl) for t in trades] == [("a", "LONG", 8.0), ("b", "SHORT", -10.0),
                                                             ("b", "LONG", -3.0)]
    m = trade_metrics(trades)
    assert (m.trades, m.wins, m.losses) == (3, 1, 2)
    assert m.win_rate == pytest.approx(1 / 3) and m.profit_factor == pytest.approx(8 / 13)
    assert m.expectancy == pytest.approx(-5 / 3) and m.average_win == 8.0 and m.average_loss == -6.5
    a = attribution(trades)
    assert a["strategy"] == {"a": 8.0, "b": -13.0}
    assert a["side"] == {"LONG": 5.0, "SHORT": -10.0}
    assert a["hour"] == {"02": 8.0, "04": -10.0, "05": -3.0}
    assert math.isnan(trade_metrics([]).win_rate)
