"""The venue's health where the operator looks: `paperdesk status` (plain and --json, saved with the risk view so
another shell sees it), the headless status line and the console's header. A real ccxt.pro client against the
loopback Binance fake, a real SQLite store."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from console.app import PaperdeskApp
from console.desk import LocalDesk
from console.store_views import print_status
from engine.brokers.broker import VenueCapabilities
from engine.clock import LiveClock
from engine.config import AppConfig, parse_config
from engine.data.feed import FeedHealth
from engine.session import PaperSession
from engine.snapshot import VenueHealth, venue_health
from tests.conftest import make_config, until
from tests.console.test_app import wait_until
from tests.venues.test_ccxt_paper_session import ccxt_config, paperdesk, tape
from tests.venues.test_ccxt_sandbox import SandboxScript  # registers its strategy: this file runs alone too


def saved(db: Path) -> tuple[dict[str, Any], str]:
    """`paperdesk status` of the database, as JSON and as text."""
    as_json, text = io.StringIO(), io.StringIO()
    print_status(db, None, True, as_json)
    print_status(db, None, False, text)
    return json.loads(as_json.getvalue()), text.getvalue()


def venue_of(db: Path) -> dict[str, Any]:
    return saved(db)[0]["venue"] or {}


async def test_status_shows_the_venue_its_connection_and_the_age_of_each_symbols_data(fake, tmp_path):
    db = tmp_path / "desk.sqlite"
    session = PaperSession(parse_config(ccxt_config(fake.http_url)), db_path=db)
    lines: list[str] = []
    market = asyncio.create_task(tape(fake, 2.5))
    trading = asyncio.create_task(session.run(duration=3.0, on_status=lambda s: lines.append(s.status_line())))
    await until(lambda: session.writer is not None and venue_of(db).get("connected") is True)

    code, out, err = await paperdesk("status", "--json", "--db", str(db))  # another process reads it
    assert code == 0, err
    venue = json.loads(out)["venue"]
    assert venue["name"] == "binance (paper)" and venue["connected"] and not venue["simulated"]
    assert venue["detail"].startswith("websocket from binance, 1 symbols")
    assert list(venue["ages_s"]) == ["BTC/USDT"] and 0 <= venue["ages_s"]["BTC/USDT"] < 1.0
    assert venue["latency_simulated_ms"] == 0.0 and venue["reconciliation"] is None
    assert 0 <= venue["measured_seconds_ago"] < 2.0

    _, text = saved(db)
    assert "venue: binance (paper), connected (websocket from binance, 1 symbols" in text
    assert "  last message: BTC/USDT " in text and "  order latency: 0 ms (simulated)" in text
    assert "reconciliation" not in text  # our simulator fills: nothing at the exchange to reconcile

    await trading
    await market
    assert lines and all(" venue=binance(paper):connected" in line for line in lines), lines
    final = saved(db)[1]
    assert "venue: binance (paper), NOT CONNECTED (closed)" in final  # as the session left it


async def test_a_dropped_connection_shows_as_reconnecting_then_connected_again(fake, tmp_path):
    db = tmp_path / "desk.sqlite"
    session = PaperSession(parse_config(ccxt_config(fake.http_url)), db_path=db)
    market = asyncio.create_task(tape(fake, 4.0))
    trading = asyncio.create_task(session.run(duration=4.0))
    await until(lambda: session.writer is not None and venue_of(db).get("connected") is True)
    await fake.disconnect()
    await until(lambda: venue_of(db).get("connected") is False)
    _, text = saved(db)
    venue = venue_of(db)
    assert "reconnecting in" in venue["detail"] and venue["detail"].startswith("BTC/USDT "), venue
    assert f"venue: binance (paper), NOT CONNECTED ({venue['detail']})" in text
    assert "; measured " in text
    await until(lambda: venue_of(db).get("connected") is True)
    assert "last gap BTC/USDT" in venue_of(db)["detail"]
    session.stop()
    await trading
    await market


async def test_a_sandbox_session_shows_measured_order_latency_and_its_reconciliation(fake, tmp_path):
    db = tmp_path / "desk.sqlite"
    script = {"name": "script", "kind": SandboxScript.kind, "symbols": ["BTC/USDT"]}
    session = PaperSession(parse_config(ccxt_config(fake.http_url, script, mode="sandbox")), db_path=db)
    market = asyncio.create_task(tape(fake, 3.0))
    trading = asyncio.create_task(session.run(duration=3.0))
    await until(lambda: session.writer is not None and venue_of(db).get("latency_count", 0) >= 3)
    venue = venue_of(db)
    assert venue["name"] == "binance (sandbox)" and venue["connected"]
    assert venue["latency_simulated_ms"] is None and 0 < venue["latency_p50_ms"] <= venue["latency_max_ms"]
    assert venue["reconciliation"].startswith("at connect: 0 order(s) already open on the exchange, left alone; "
                                              "balances ") and "USDT" in venue["reconciliation"]
    _, text = saved(db)
    assert "  order latency: p50 " in text and " order acks)" in text
    assert "  reconciliation: at connect: 0 order(s) already open" in text
    session.stop()
    await trading
    await market


async def test_a_simulated_session_adds_one_venue_line_and_nothing_to_its_status_line(tmp_path):
    db = tmp_path / "desk.sqlite"
    lines: list[str] = []
    await PaperSession(make_config(), db_path=db).run(duration=0.6, on_status=lambda s: lines.append(s.status_line()))
    view, text = saved(db)
    assert view["venue"]["name"] == "simulated" and view["venue"]["simulated"]
    assert [line for line in text.splitlines() if "venue" in line] == ["venue: simulated, closed"]
    assert lines and not any("venue=" in line for line in lines)


def health(detail: str, connected: bool = True) -> VenueHealth:
    return VenueHealth("binance (paper)", False, connected, detail, {"BTC/USDT": 0.25, "ETH/USDT": 12.5}, 50.0)


def test_the_console_header_cuts_the_feed_detail_first_and_never_passes_its_width():
    one = VenueHealth("binance (paper)", False, True, "websocket from binance, 1 symbols", {"BTC/USDT": 0.25}, 50.0)
    assert one.header(78) == "binance (paper) connected (webso…ymbols)  age BTC/USDT 0.2s  latency 50 ms sim"
    assert one.header(120) == ("binance (paper) connected (websocket from binance, 1 symbols)  age BTC/USDT 0.2s  "
                               "latency 50 ms sim")
    two = health("websocket from binance, 2 symbols")
    assert two.header(78) == "binance (paper) connected  age BTC/USDT 0.2s ETH/USDT 12.5s  latency 50 ms sim"
    down = health("BTC/USDT book: NetworkError: connection closed by remote server, closing code 1006; "
                  "reconnecting in 0.61 s", connected=False).header(78)
    # why it is down and when it retries outrank the rest of the line
    assert down.startswith("binance (paper) NOT CONNECTED (BTC/USDT book…ting in 0.61 s)  age BTC/USDT")
    assert len(down) == 78 and down.endswith("…")
    narrow = health("anything").header(40)
    assert narrow == "binance (paper) connected  age BTC/USDT…" and len(narrow) == 40


def test_a_sandbox_broker_s_latency_and_order_stream_are_read_from_the_broker():
    class Broker:
        capabilities = VenueCapabilities("binance (sandbox)", paper=True)
        reconciliation = "2 open orders from before this session, left alone"

        def latency_ms(self) -> dict[str, dict[str, float]]:
            return {"order_ack": {"last": 9.0, "median": 12.0, "max": 40.0, "count": 5.0},
                    "fetch_balance": {"last": 3.0, "median": 3.0, "max": 3.0, "count": 1.0}}

        def health(self) -> dict[str, Any]:
            return {"stream": "down", "reconnects": 2, "last_error": "-1003 Too many requests"}

    clock = LiveClock()
    feed = FeedHealth(True, detail="websocket from binance, 1 symbols",
                      received_ns_by_symbol={"BTC/USDT": clock.now_ns() - 2_000_000_000})
    config = parse_config(ccxt_config("http://127.0.0.1:9", mode="sandbox")).venue
    got = venue_health(config, Broker(), feed, clock)  # type: ignore[arg-type]  # only what venue_health reads
    assert not got.connected and got.detail == ("websocket from binance, 1 symbols; order stream down after 2 "
                                                "reconnects (-1003 Too many requests)")
    assert 2.0 <= got.ages_s["BTC/USDT"] < 3.0
    assert got.lines()[1:] == [f"  last message: BTC/USDT {got.ages_s['BTC/USDT']:.1f} s ago",
                               "  order latency: p50 12 ms, max 40 ms (last 5 order acks)",
                               "  reconciliation: 2 open orders from before this session, left alone"]
    assert VenueHealth.from_json(json.loads(json.dumps(got.to_json()))) == got


@asynccontextmanager
async def console_at(config: AppConfig, size: tuple[int, int]) -> AsyncIterator[tuple[PaperdeskApp, Any]]:
    """A session trading in the background and the real app watching it in a terminal of the given size."""
    session = PaperSession(config)
    await session.open()
    app = PaperdeskApp(LocalDesk(session), config)
    trading = asyncio.create_task(session.run())
    try:
        async with app.run_test(size=size) as pilot:
            yield app, pilot
    finally:
        session.stop()
        await trading


async def test_the_console_header_shows_a_ccxt_venue_and_its_connection_in_80_columns(fake):
    async def market() -> None:
        while True:
            await tape(fake, 1.0)

    moving = asyncio.create_task(market())
    try:
        async with console_at(parse_config(ccxt_config(fake.http_url)), (80, 30)) as (app, pilot):
            header = app.query_one("#header")
            await wait_until(pilot, lambda: "binance connected" in header.line)
            assert len(header.line) <= header.content_size.width == 78 and header.size.height == 1
            market = app.query_one("#market")  # the venue's own line: connection, latency, reconciliation
            assert str(market.border_subtitle).startswith("binance (paper) connected (")
            assert "latency " in str(market.border_subtitle)
    finally:
        moving.cancel()
