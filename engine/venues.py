"""Venues by config kind: each gives the session a Feed (market data) and a Broker (orders).

`[venue] kind` picks one; the session, the runtime builders and recovery name no concrete feed or
broker. "simulated" is the synthetic market; "ccxt" is a crypto exchange's public data, filled on by the same
simulator (paper mode) or by the exchange's testnet (sandbox mode). A venue whose instruments only it knows
(ListsInstruments) is asked for them when the session opens, before the engine is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from engine.brokers.broker import Broker, VenueCapabilities
from engine.brokers.paper import PaperBroker
from engine.clock import Clock, LiveClock
from engine.config import AppConfig, InstrumentConfig
from engine.data.feed import Feed
from engine.data.synthetic import MarketDynamics, SyntheticMarket, SyntheticSymbol
from engine.data.synthetic_feed import SyntheticFeed
from engine.execution.fill_model import FillModel
from engine.model.instrument import Instrument
from engine.runtime import build_fill_model, build_instrument

if TYPE_CHECKING:
    from engine.venues_ccxt.credentials import Credentials


class Venue(Protocol):
    """Makes a session's feed (on the wall clock) and broker (on the engine's clock)."""

    def feed(self, config: AppConfig, clock: LiveClock) -> Feed: ...
    def broker(self, config: AppConfig, clock: Clock, instruments: dict[str, Instrument]) -> Broker: ...


@runtime_checkable
class ListsInstruments(Protocol):
    """A venue whose instruments (grid, minimums, fees) are known only once it is asked: a live exchange."""

    async def listed(self, config: AppConfig) -> AppConfig:
        """config with every instrument as the venue lists it (raises ConfigError for one it does not list)."""
        ...


@runtime_checkable
class ReportsGaps(Protocol):
    """A feed that reports stretches in which a symbol's data may be incomplete (reconnects, resyncs)."""

    on_gap: Callable[[str, int, int, str], None] | None


@runtime_checkable
class ReportsDrops(Protocol):
    """A feed that drops updates it cannot use (a price that is no number, a message its client could not read)."""

    on_dropped: Callable[[str], None] | None


def build_market(config: AppConfig) -> SyntheticMarket:
    """The synthetic market of a simulated venue's config."""
    symbols = [SyntheticSymbol(build_instrument(i), i.start_price, i.daily_vol, i.spread_bps, i.depth)
               for i in config.instruments]
    v = config.venue
    return SyntheticMarket(symbols, MarketDynamics(correlation=v.correlation, jumps_per_day=v.jumps_per_day),
                           v.seed)


class SimulatedVenue:
    """The built-in venue: the synthetic market as the feed, the fill simulator as the broker."""

    def __init__(self, fill_model: FillModel | None = None) -> None:
        self.fill_model = fill_model

    def feed(self, config: AppConfig, clock: LiveClock) -> Feed:
        return SyntheticFeed(build_market(config), clock, config.venue.tick_interval_ms / 1000.0)

    def broker(self, config: AppConfig, clock: Clock, instruments: dict[str, Instrument]) -> Broker:
        return PaperBroker(clock, instruments, self.fill_model or build_fill_model(config),
                           config.session.starting_cash)


class CcxtVenue:
    """A crypto exchange through ccxt: its public books and trades as the feed; as the broker our fill simulator
    (paper mode) or the exchange's testnet (sandbox mode). One public-only client serves the market list and the
    feed; it never holds a key. In sandbox mode both are the testnet's, and the broker has its own keyed client."""

    def __init__(self) -> None:
        self._exchange: Any = None

    def client(self, config: AppConfig) -> Any:
        if self._exchange is None:
            from engine.venues_ccxt import make_exchange  # ccxt is imported by ccxt sessions only

            v = config.venue
            assert v.exchange is not None  # the config's rules require it for kind ccxt
            self._exchange = make_exchange(v.exchange, v.url, _settings(config), sandbox=v.mode == "sandbox")
        return self._exchange

    async def listed(self, config: AppConfig) -> AppConfig:
        from engine.venues_ccxt.markets import list_instruments

        if config.venue.mode == "sandbox":
            _credentials(config)  # a missing key is the first thing said, before the exchange is asked anything
        exchange = self.client(config)
        listed = await list_instruments(exchange, [(i.symbol, {k: getattr(i, k) for k in i.model_fields_set
                                                               if k in GRID_KEYS}) for i in config.instruments])
        instruments = [_as_listed(i, listed[i.symbol]) for i in config.instruments]
        return config.model_copy(update={"instruments": instruments})

    def feed(self, config: AppConfig, clock: LiveClock) -> Feed:
        from engine.venues_ccxt import CcxtFeed

        return CcxtFeed(self.client(config), clock, depth=config.venue.depth)

    def broker(self, config: AppConfig, clock: Clock, instruments: dict[str, Instrument]) -> Broker:
        v = config.venue
        if v.mode == "sandbox":
            from engine.brokers.ccxt_broker import CcxtBroker
            from engine.venues_ccxt import make_keyed_exchange

            assert v.exchange is not None
            credentials = _credentials(config)
            return CcxtBroker(make_keyed_exchange(v.exchange, credentials, v.url, _settings(config)), clock,
                              instruments, f"{v.exchange} (sandbox)", credentials)
        broker = PaperBroker(clock, instruments, build_fill_model(config), config.session.starting_cash)
        # fills are ours, so a replay of the recording rebuilds them; the exchange's market went on while we were away
        broker.capabilities = VenueCapabilities(f"{config.venue.exchange} (paper)", paper=True, simulated=True,
                                                live_market=True)
        return broker


GRID_KEYS = ("tick_size", "lot_size", "min_qty", "min_notional")


def _settings(config: AppConfig) -> dict[str, Any]:
    """ccxt constructor settings of a config's venue (never credentials or URLs)."""
    settings: dict[str, Any] = {"timeout": int(config.venue.timeout_ms)}
    if config.venue.url is not None:
        settings["timeout_on_exit"] = 0  # close() waits for TLS transports; a loopback stand-in has none
    return settings


def _credentials(config: AppConfig) -> Credentials:
    from engine.venues_ccxt.credentials import read_credentials

    v = config.venue
    assert v.exchange is not None
    return read_credentials(v.exchange, v.key_env, v.secret_env)


def _as_listed(given: InstrumentConfig, listed: Instrument) -> InstrumentConfig:
    """The config entry with the exchange's grid and minimums, and its fees unless the config gives its own (a fee
    tier): what the session stores, so validate's twin trades on the same grid."""
    fees = {k: getattr(listed, k) for k in ("maker_fee", "taker_fee") if k not in given.model_fields_set}
    return given.model_copy(update={"tick_size": listed.tick_size, "lot_size": listed.lot_size,
                                    "min_qty": listed.min_qty, "min_notional": listed.min_notional, **fees})


VENUES: dict[str, Callable[[], Venue]] = {"simulated": SimulatedVenue, "ccxt": CcxtVenue}


def venue_for(config: AppConfig) -> Venue:
    """The venue config's [venue] kind names."""
    return VENUES[config.venue.kind]()
