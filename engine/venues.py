"""Venues by config kind: each gives the session a Feed (market data) and a Broker (orders).

`[venue] kind` picks one; the session, the runtime builders and recovery name no concrete feed or
broker. The simulated venue is the only kind so far; the ccxt and IB issues add theirs here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from engine.brokers.broker import Broker
from engine.brokers.paper import PaperBroker
from engine.clock import Clock, LiveClock
from engine.config import AppConfig
from engine.data.feed import Feed
from engine.data.synthetic import MarketDynamics, SyntheticMarket, SyntheticSymbol
from engine.data.synthetic_feed import SyntheticFeed
from engine.execution.fill_model import FillModel
from engine.model.instrument import Instrument
from engine.runtime import build_fill_model, build_instrument


class Venue(Protocol):
    """Makes a session's feed (on the wall clock) and broker (on the engine's clock)."""

    def feed(self, config: AppConfig, clock: LiveClock) -> Feed: ...
    def broker(self, config: AppConfig, clock: Clock, instruments: dict[str, Instrument]) -> Broker: ...


def build_market(config: AppConfig) -> SyntheticMarket:
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


VENUES: dict[str, Callable[[], Venue]] = {"simulated": SimulatedVenue}


def venue_for(config: AppConfig) -> Venue:
    """The venue config's [venue] kind names."""
    return VENUES[config.venue.kind]()
