"""Crypto venues through ccxt, in paper mode: the venue's public market data, our own fill simulator for orders."""

from engine.venues_ccxt.connection import Backoff, make_exchange
from engine.venues_ccxt.feed import CcxtFeed, FeedGap
from engine.venues_ccxt.markets import VenueInputError, load_instruments

__all__ = ["Backoff", "CcxtFeed", "FeedGap", "VenueInputError", "load_instruments", "make_exchange"]
