"""The built-in simulated venue's market: seeded, correlated, regime-switching, with jumps and a sane book."""

import asyncio
import math
from types import SimpleNamespace

import numpy as np

from engine.data import synthetic_feed
from engine.data.synthetic import MarketDynamics, SyntheticMarket, SyntheticSymbol
from engine.model.instrument import is_multiple
from engine.model.market import BookSnapshot, TradeTick
from engine.runtime import build_instrument
from engine.venues import build_market
from tests.conftest import make_config


def market(seed=5, **dynamics) -> SyntheticMarket:
    return build_market(make_config(venue={"seed": seed, **dynamics}))


def run(m: SyntheticMarket, steps: int, dt: float = 3.0):
    return [m.step(i * int(dt * 1e9), dt) for i in range(1, steps + 1)]


def test_the_same_seed_and_steps_make_the_same_market():
    assert run(market(seed=9), 200) == run(market(seed=9), 200)
    assert run(market(seed=9), 50) != run(market(seed=10), 50)


def test_every_step_quotes_a_well_formed_book_and_trades_at_its_levels():
    m = market()
    instruments = {s.instrument.symbol: s.instrument for s in m.symbols}
    for events in run(m, 300):
        books = [e for e in events if isinstance(e, BookSnapshot)]
        assert {b.symbol for b in books} == set(instruments) == {"BTC/USDT", "ETH/USDT", "SOL/USDT"}
        for event in events:
            inst = instruments[event.symbol]
            if isinstance(event, BookSnapshot):
                bids, asks = [p for p, _ in event.bids], [p for p, _ in event.asks]
                assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
                assert bids[0] < asks[0], "crossed book"
                assert len(bids) == len(asks) == 10
                for price, size in event.bids + event.asks:
                    assert is_multiple(price, inst.tick_size) and is_multiple(size, inst.lot_size) and size > 0
                book = event
            else:
                assert isinstance(event, TradeTick) and event.symbol == book.symbol
                side = book.asks if event.aggressor > 0 else book.bids
                assert event.price in [p for p, _ in side]
                assert event.size > 0 and is_multiple(event.size, inst.lot_size)


def test_returns_are_correlated_as_configured():
    m = market(correlation=0.8, jumps_per_day=0.0)
    mids = np.array([[e.mid for e in events if isinstance(e, BookSnapshot)] for events in run(m, 4000)])
    returns = np.diff(np.log(mids), axis=0)
    corr = np.corrcoef(returns.T)
    off_diagonal = corr[np.triu_indices(3, 1)]
    assert np.all(off_diagonal > 0.65) and np.all(off_diagonal < 0.9)
    independent = market(correlation=0.0, jumps_per_day=0.0)
    mids = np.array([[e.mid for e in events if isinstance(e, BookSnapshot)] for events in run(independent, 4000)])
    assert np.all(np.abs(np.corrcoef(np.diff(np.log(mids), axis=0).T)[np.triu_indices(3, 1)]) < 0.15)


def test_volatility_regimes_switch_and_stormy_markets_move_more():
    inst = make_config().instruments[0]
    spec = SyntheticSymbol(build_instrument(inst), 100.0, 0.05, 2.0, 1.0)
    m = SyntheticMarket([spec], MarketDynamics(regime_switch_per_hour=20.0, jumps_per_day=0.0), seed=3)
    calm, stormy = [], []
    last = math.log(100.0)
    for i in range(1, 20000):
        was_stormy = m.stormy
        m.step(i * 10**9, 1.0)
        now = math.log(m.prices()[spec.instrument.symbol])
        if m.stormy == was_stormy:
            (stormy if m.stormy else calm).append(now - last)
        last = now
    assert len(calm) > 1000 and len(stormy) > 1000
    assert 2.5 < np.std(stormy) / np.std(calm) < 3.5  # high_vol_multiplier = 3


def test_jumps_happen_at_roughly_the_configured_rate():
    inst = make_config().instruments[0]
    spec = SyntheticSymbol(build_instrument(inst), 100.0, 0.0001, 2.0, 1.0)
    dyn = MarketDynamics(jumps_per_day=200.0, jump_size=0.02, regime_switch_per_hour=0.0)
    m = SyntheticMarket([spec], dyn, seed=4)
    big_moves, last = 0, math.log(100.0)
    for i in range(1, 8641):  # one market day in 10 s steps
        m.step(i * 10 * 10**9, 10.0)
        now = math.log(m.prices()[spec.instrument.symbol])
        big_moves += abs(now - last) > 0.002  # diffusion alone moves ~1e-6 per step
        last = now
    assert 150 < big_moves < 250


async def test_the_running_feed_lets_the_loop_in_and_describes_the_same_market(monkeypatch):
    """receive() lets the loop in between symbols (LET_IN_EVERY_S) and still gives step_to()'s events, in order."""
    monkeypatch.setattr(synthetic_feed, "LET_IN_EVERY_S", 0.0)
    times = iter(range(3_000_000_000, 600_000_000_000, 3_000_000_000))
    running = synthetic_feed.SyntheticFeed(market(seed=4), SimpleNamespace(now_ns=lambda: next(times)), 0.0)
    stepped = synthetic_feed.SyntheticFeed(market(seed=4), SimpleNamespace(now_ns=lambda: 3_000_000_000), 0.0)
    let_in = 0

    async def count_let_ins() -> None:
        nonlocal let_in
        while True:
            await asyncio.sleep(0)
            let_in += 1

    counting = asyncio.create_task(count_let_ins())
    await asyncio.sleep(0)
    batches = [await running.receive() for _ in range(20)]
    counting.cancel()
    assert let_in >= 20 * 3  # at least once per symbol of each batch
    for batch in batches:
        assert batch.events and stepped.step_to(batch.received_ns).events == batch.events
    assert running.state() == stepped.state()
