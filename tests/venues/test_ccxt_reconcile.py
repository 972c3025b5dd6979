"""Reconciling a resumed sandbox session with the exchange, in the corners a review found: nothing traded twice, no
unknown order missed, no false halt, a halt once dealt with not raised again, and no session left unresumable.

The real ccxt.pro binance client against the loopback Binance fake, a real SQLite database, no network."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from engine.breakers.trading_state import PORTFOLIO, TradingState
from engine.brokers.broker import Broker
from engine.brokers.ccxt_broker import CcxtBroker
from engine.clock import Clock
from engine.config import AppConfig
from engine.model.fill import Fill, FillBasis, Liquidity
from engine.model.instrument import Instrument
from engine.model.order import OrderStatus
from engine.model.venue_event import VenueEvent, VenueEventKind
from engine.session import PaperSession
from engine.venues import CcxtVenue
from tests.fakes.binance import FakeBinance
from tests.venues.test_ccxt_resume import trade_until
from tests.venues.test_ccxt_sandbox import broker, filled, order, sandbox_config, until  # noqa: F401 (fixture)
from tests.venues.test_ccxt_sandbox_resume import LIMIT, close, config_for, crashed, tape, venue_of  # noqa: F401


def state(session: PaperSession) -> TradingState:
    return session.engine.guard.states.state(PORTFOLIO)


def place(fake: FakeBinance, client_id: str, price: str = "49000") -> Any:
    return fake.exchange.place({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                "quantity": "0.01", "price": price, "newClientOrderId": client_id})


async def resumed_and_resumed_again(fake: FakeBinance, db: Any, config: AppConfig) -> PaperSession:
    """The first restart halts; the operator deals with it and resumes trading; the second restart must not halt."""
    b = PaperSession(config, db_path=db)
    await b.open()
    assert state(b) is TradingState.HALTED
    ok, _ = b.operator_command("resume", {}, "checked the exchange", "console")
    assert ok and state(b) is TradingState.ACTIVE
    await b.run(duration=0.5)
    c = PaperSession(config, db_path=db)
    await c.open()
    return c


@pytest.mark.usefixtures("tape")
async def test_an_unknown_order_dealt_with_does_not_halt_the_next_restart(fake, tmp_path):
    db, config = tmp_path / "desk.sqlite", config_for(fake)
    a = await crashed(db, config)
    stranger = place(fake, f"{venue_of(a).tag}-O0000003")
    fake.exchange.cancel(stranger)  # (canceled at once, so the balances stay as the fills say)
    c = await resumed_and_resumed_again(fake, db, config)
    assert venue_of(c).mismatch is None and state(c) is TradingState.ACTIVE
    await close(c)


@pytest.mark.usefixtures("tape")
async def test_a_balance_difference_accepted_by_the_operator_does_not_halt_the_next_restart(fake, tmp_path):
    db, config = tmp_path / "desk.sqlite", config_for(fake)
    await crashed(db, config)
    fake.exchange.balance("USDT").free -= Decimal("250")
    c = await resumed_and_resumed_again(fake, db, config)
    assert venue_of(c).mismatch is None and state(c) is TradingState.ACTIVE
    await close(c)


@pytest.mark.usefixtures("tape")
async def test_an_asset_the_session_does_not_trade_is_not_compared(fake, tmp_path):
    fake.exchange.balance("BNB").free = Decimal("5")
    db, config = tmp_path / "desk.sqlite", config_for(fake)
    await crashed(db, config)
    fake.exchange.balance("BNB").free -= Decimal("0.0001")  # a fee paid in BNB, another bot on another pair
    b = PaperSession(config, db_path=db)
    await b.open()
    assert venue_of(b).mismatch is None and state(b) is TradingState.ACTIVE
    await close(b)


class FillsDuringLookup(CcxtVenue):
    """The resting order fills on the exchange while the reconciliation is looking it up."""

    def __init__(self, fake: FakeBinance, ref: str) -> None:
        super().__init__()
        self.fake, self.ref = fake, ref

    def broker(self, config: AppConfig, clock: Clock, instruments: dict[str, Instrument]) -> Broker:
        made = super().broker(config, clock, instruments)
        assert isinstance(made, CcxtBroker)
        real, fake, ref, done = made.exchange.fetch_order, self.fake, self.ref, []

        async def fetch_order(*args: Any) -> Any:
            if not done:
                done.append(1)
                await fake.fill(ref)
            return await real(*args)

        made.exchange.fetch_order = fetch_order
        return made


@pytest.mark.usefixtures("tape")
async def test_a_fill_during_the_reconciliation_is_no_balance_mismatch(fake, tmp_path):
    db, config = tmp_path / "desk.sqlite", config_for(fake)
    a = await crashed(db, config)
    b = PaperSession(config, db_path=db, venue=FillsDuringLookup(fake, f"{venue_of(a).tag}-O0000002"))
    await b.open()
    assert "1 fill(s) from while it was down" in (venue_of(b).reconciliation or "")
    assert venue_of(b).mismatch is None and state(b) is TradingState.ACTIVE
    await close(b)


@pytest.mark.usefixtures("tape")
async def test_an_unknown_order_behind_a_page_of_other_orders_is_found(fake, tmp_path):
    def all_orders(params: dict[str, str]) -> list[dict[str, Any]]:
        # as Binance: from startTime on, oldest first, `limit` (default 500) of them
        symbol = fake.exchange.spec(params.get("symbol", "")).symbol
        start = int(params.get("startTime", "0"))
        chosen = sorted((o for o in fake.exchange.orders.values() if o.symbol == symbol and o.created >= start),
                        key=lambda o: o.order_id)
        return [o.status_json() for o in chosen[:int(params.get("limit", "500"))]]

    fake._routes[("GET", "/api/v3/allOrders")] = (True, all_orders)
    db, config = tmp_path / "desk.sqlite", config_for(fake)
    a = await crashed(db, config)
    for i in range(1200):  # another bot's orders on the same account since the crash
        fake.exchange.cancel(place(fake, f"other{i}", "40000"))
    fake.exchange.cancel(place(fake, f"{venue_of(a).tag}-O0000003"))
    b = PaperSession(config, db_path=db)
    await b.open()
    assert venue_of(b).mismatch is not None and f"{venue_of(a).tag}-O0000003" in venue_of(b).mismatch
    assert state(b) is TradingState.HALTED
    await close(b)


async def test_a_rate_limited_lookup_after_a_lost_create_does_not_send_the_order_again(fake, broker):  # noqa: F811
    real = broker.exchange.create_order
    calls = 0
    broker.recv_window_s = 0.4

    async def lost(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await real(*args)  # the market order reached the exchange and filled; its answer was lost
            fake.fail_next(1, 429, retry_after=0)  # and the lookup that follows is rate limited
            raise ccxt.RequestTimeout("binance POST http://127.0.0.1/api/v3/order request timeout")
        return await real(*args)

    broker.exchange.create_order = lost
    o = order(0.01)
    broker.submit(o)
    placing = broker._orders[o.client_id].placing
    assert placing is not None
    await until(placing.done, 5.0)
    await asyncio.sleep(0.3)
    assert calls == 1 and len(fake.exchange.orders) == 1 and filled(broker, o.client_id) == 0.01


@pytest.mark.usefixtures("tape")
async def test_a_report_saved_without_its_market_event_does_not_make_the_session_unresumable(fake, tmp_path):
    db, config = tmp_path / "desk.sqlite", config_for(fake)
    a = PaperSession(config, db_path=db)
    await a.open()
    orders = a.engine.oms.orders
    await trade_until(a, lambda: "O0000002" in orders and orders["O0000002"].status is OrderStatus.ACCEPTED)
    o = orders["O0000002"]
    # a report the engine cannot apply (more than the order's quantity): it is saved as heard, then applying it fails
    venue_of(a).events.append(VenueEvent(VenueEventKind.FILLED, o.client_id, 1, fill=Fill(
        "BTC/USDT#999", o.client_id, o.strategy, o.symbol, o.side, 1.0, LIMIT, 0.0, Liquidity.MAKER, 1,
        FillBasis.VENUE, 0.0, 0, 0.0, 0.0)))
    failed: BaseException | None = None
    try:
        await trade_until(a, lambda: False, timeout=2)
    except Exception as exc:  # what run() does with it: the store is closed with the failure
        failed = exc
    assert failed is not None
    await a._close_store(failed)
    await a.engine.broker.close()
    await a.feed.close()
    b = PaperSession(config, db_path=db)
    await b.open()  # the report never applied is dropped; the exchange is asked again
    assert b.engine.orders["O0000002"].status is OrderStatus.ACCEPTED and venue_of(b).mismatch is None
    await close(b)
