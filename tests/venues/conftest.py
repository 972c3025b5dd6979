"""The loopback Binance fake the venue tests trade on, with a BTC/USDT book and testnet keys in the environment."""

from collections.abc import AsyncIterator

import pytest

from tests.fakes.binance import FakeBinance

KEY = "sbx-KEY-7f3a9c1e55d04b2a"
SECRET = "sbx-SECRET-c0ffee5e4b1d9a77"
BIDS = [("49990", "1"), ("49980", "2"), ("49970", "3")]
ASKS = [("50010", "0.5"), ("50020", "2"), ("50030", "4")]


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeBinance]:
    monkeypatch.setenv("BINANCE_TESTNET_KEY", KEY)  # a sandbox session finds its keys; paper sessions never read them
    monkeypatch.setenv("BINANCE_TESTNET_SECRET", SECRET)
    async with FakeBinance(api_key=KEY, secret=SECRET) as running:
        await running.set_book("BTC/USDT", BIDS, ASKS)
        yield running
