"""Crypto venues through ccxt: the venue's public market data, and orders filled by our own simulator (paper mode) or
by the exchange's testnet (sandbox mode, engine/brokers/ccxt_broker.py)."""

from engine.venues_ccxt.connection import Backoff, make_exchange, make_keyed_exchange
from engine.venues_ccxt.credentials import Credentials, CredentialsError, read_credentials
from engine.venues_ccxt.feed import CcxtFeed, FeedGap
from engine.venues_ccxt.markets import VenueInputError, load_instruments

__all__ = ["Backoff", "CcxtFeed", "Credentials", "CredentialsError", "FeedGap", "VenueInputError", "load_instruments",
           "make_exchange", "make_keyed_exchange", "read_credentials"]
