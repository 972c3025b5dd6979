"""A paper session on a ccxt venue, end to end: the real ccxt.pro binance client against the loopback Binance fake.

Market data is recorded as it arrives, our simulator fills on the fake's book, no private call leaves the client,
the command runs and validates, and bad input is one clear message before any database exists."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import PositiveFloat

from engine.config import ConfigError, parse_config
from engine.model.market import TradeTick
from engine.session import PaperSession
from engine.strategy.base import Strategy, StrategyParams
from engine.strategy.registry import register, strategy_kinds
from engine.venues_ccxt import VenueInputError
from tests.conftest import toml_text
from tests.console.test_cli import REPO
from tests.fakes.binance import FakeBinance


class FirstTickParams(StrategyParams):
    size: PositiveFloat = 0.01


class BuyFirstTick(Strategy):
    """Buys at market on the first print it sees: a fill needs only a book and a trade, not a minute of bars."""

    kind = "test_buy_first_tick"
    Params = FirstTickParams

    def on_start(self) -> None:
        self.bought = False

    def on_tick(self, tick: TradeTick) -> None:
        if not self.bought:
            self.bought = True
            self.buy(tick.symbol, self.params.size, reason="first print")


if BuyFirstTick.kind not in strategy_kinds():
    register(BuyFirstTick)


def ccxt_config(address: str, strategy: dict[str, Any] | None = None, **venue: Any) -> dict[str, Any]:
    return {"session": {"starting_cash": 100_000.0, "equity_mark_seconds": 0.2, "status_seconds": 0.5},
            "venue": {"kind": "ccxt", "exchange": "binance", "url": address, "timeout_ms": 2000.0, "latency_ms": 0.0}
            | venue,
            "validation": {"live_interval_seconds": None},
            "instruments": [{"symbol": "BTC/USDT"}],
            "strategies": [strategy or {"name": "first", "kind": "test_buy_first_tick", "symbols": ["BTC/USDT"],
                                        "params": {"size": 0.01}}]}


async def tape(fake: FakeBinance, seconds: float) -> None:
    """The market moves: a print and a book change every 100 ms."""
    for i in range(int(seconds * 10)):
        await fake.trade("BTC/USDT", "50010", "0.01")
        await fake.update_book("BTC/USDT", bids=[("49990", str(1 + i % 3))])
        await asyncio.sleep(0.1)


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


async def test_a_paper_session_records_the_exchange_and_fills_on_its_book(fake, tmp_path):
    db = tmp_path / "desk.sqlite"
    session = PaperSession(parse_config(ccxt_config(fake.http_url)), db_path=db)
    await session.open()
    assert session.engine.instruments["BTC/USDT"].tick_size == 0.01  # the exchange's grid, not a config's
    market = asyncio.create_task(tape(fake, 1.5))
    snapshot = await session.run(duration=2.0)
    await market
    fills = query(db, "SELECT side, qty, price FROM fills")
    assert fills == [("BUY", 0.01, 50010.0)] and snapshot.fills == 1  # a market buy lifts the fake's best ask
    kinds = dict(query(db, "SELECT kind, COUNT(*) FROM market_data GROUP BY kind"))
    assert kinds.get("book", 0) >= 5 and kinds.get("trade", 0) >= 5, kinds
    assert query(db, "SELECT venue FROM sessions") == [("ccxt",)]
    assert query(db, "SELECT tick_size, lot_size, min_notional, taker_fee FROM instruments") == [
        (0.01, 0.00001, 5.0, 0.001)]
    assert fake.private_calls() == [] and fake.calls  # public REST only (exchangeInfo, depth)


async def test_a_symbol_the_exchange_does_not_list_is_named_with_the_closest_before_any_database(fake, tmp_path):
    data = ccxt_config(fake.http_url)
    data["instruments"] = [{"symbol": "BTC/USDX"}, {"symbol": "BTC/USDT", "tick_size": 0.5}]
    data["strategies"] = []
    session = PaperSession(parse_config(data), db_path=tmp_path / "desk.sqlite")
    with pytest.raises(VenueInputError) as refused:
        await session.open()
    assert str(refused.value).splitlines() == [
        "instruments[0]: binance does not list 'BTC/USDX' (closest listed: BTC/USDT, ETH/USDT)",
        "instruments[1].tick_size = 0.5: binance trades BTC/USDT with tick_size 0.01 (leave it out to take the "
        "exchange's)"]
    assert isinstance(refused.value, ConfigError)  # the command line reports it as one: a message, exit 2
    assert not (tmp_path / "desk.sqlite").exists()


async def test_an_exchange_that_does_not_answer_at_start_is_one_message(tmp_path):
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1 << 16)
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = parse_config(ccxt_config(f"http://127.0.0.1:{port}", timeout_ms=300.0))
        session = PaperSession(config, db_path=tmp_path / "desk.sqlite")
        with pytest.raises(VenueInputError, match="binance: cannot load its market list \\(RequestTimeout.*"
                                                  "exchangeInfo\\); is the exchange reachable\\? Nothing was traded"):
            await session.open()
    finally:
        server.close()
    assert not (tmp_path / "desk.sqlite").exists()


@pytest.mark.parametrize(("venue", "message"), [
    ({"exchange": "binanse"}, "venue.exchange = 'binanse': ccxt has no such exchange (close ones: binance"),
    ({"mode": "live"}, "venue.mode = 'live': paperdesk trades paper money only"),
    ({"exchange": "okx", "mode": "sandbox"}, "venue.mode = 'sandbox': sandbox mode is built for binance only"),
    ({"key_env": "MY_KEY"}, "venue.key_env: applies to venue.mode = 'sandbox' only: paper mode uses no keys"),
    ({"url": "https://api.binance.com"}, "venue.url: base URL 'https://api.binance.com' refused"),
    ({"speed": 60.0}, "venue.speed = 60.0: must be 1 for a ccxt venue"),
    ({"seed": 3}, "venue.seed = 3: applies to venue.kind = 'simulated' only"),
])
def test_bad_venue_settings_are_one_message_each(venue, message):
    with pytest.raises(ConfigError) as refused:
        parse_config(ccxt_config("http://127.0.0.1:9", **venue), "c.toml")
    assert str(refused.value).splitlines() == [line for line in str(refused.value).splitlines() if message in line]


def toml(data: dict[str, Any]) -> str:
    return toml_text({k: v for k, v in data.items() if v != {"live_interval_seconds": None}})


async def paperdesk(*args: str, timeout: float = 30) -> tuple[int, str, str]:
    """The real command in a child process, while this test's loop keeps serving the fake."""
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "console.cli", *args, cwd=REPO,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(child.communicate(), timeout)
    assert child.returncode is not None
    return child.returncode, out.decode(), err.decode()


async def test_the_command_runs_a_ccxt_paper_session_and_validates_it(fake, tmp_path):
    sma = {"name": "sma_btc", "kind": "sma_crossover", "symbols": ["BTC/USDT"], "timeframe": "1s",
           "params": {"fast": 2, "slow": 3, "size": 0.01}}
    config, db = tmp_path / "binance.toml", tmp_path / "desk.sqlite"
    config.write_text(toml(ccxt_config(fake.http_url, sma)))
    market = asyncio.create_task(tape(fake, 4.0))
    code, out, err = await paperdesk("run", "--no-ui", "--duration", "3", "--config", str(config), "--db", str(db))
    market.cancel()
    assert code == 0, err
    lines = out.strip().splitlines()
    assert " start venue=binance(paper) speed=1 " in lines[0]
    assert " summary stopped_by=duration " in lines[-1], out
    assert query(db, "SELECT COUNT(*) FROM market_data")[0][0] > 10
    assert fake.private_calls() == []
    code, out, err = await paperdesk("validate", "--db", str(db))
    assert code in (0, 1) and "Traceback" not in err, err
    assert out.strip()

    bad = tmp_path / "bad.toml"
    data = ccxt_config(fake.http_url, sma)
    data["instruments"] = [{"symbol": "BTC/USDX"}]
    data["strategies"][0]["symbols"] = ["BTC/USDX"]
    bad.write_text(toml(data))
    code, out, err = await paperdesk("run", "--no-ui", "--duration", "3", "--config", str(bad), "--db",
                                     str(tmp_path / "bad.sqlite"))
    assert code == 2 and "Traceback" not in err
    assert err == "paperdesk: instruments[0]: binance does not list 'BTC/USDX' (closest listed: BTC/USDT, ETH/USDT)\n"
    assert not (tmp_path / "bad.sqlite").exists()


async def test_a_dropped_connection_is_recorded_as_a_feed_gap(fake, tmp_path):
    db = tmp_path / "desk.sqlite"
    session = PaperSession(parse_config(ccxt_config(fake.http_url)), db_path=db)
    await session.open()

    async def drop_once() -> None:
        await asyncio.sleep(0.5)
        await fake.disconnect()

    market = asyncio.gather(tape(fake, 2.5), drop_once())
    await session.run(duration=2.8)
    await market
    gaps = query(db, "SELECT kind, detail FROM state_events WHERE scope = 'feed'")
    assert gaps and all(kind == "GAP" and detail.startswith("BTC/USDT: ") for kind, detail in gaps), gaps
    assert any("feed gap on BTC/USDT" in line for _, level, line in session.engine.events if level == "WARN")
    assert fake.private_calls() == []
