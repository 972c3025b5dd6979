"""Testnet keys for sandbox mode, read from the environment variables the config names (never from the config).

The values live in a Credentials object only, whose repr shows the variables' names; every message about them names
the variables, never what they hold.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.venues_ccxt.markets import VenueInputError


class CredentialsError(VenueInputError):
    """A testnet key or secret is missing from the environment, or the exchange refused them.

    A ConfigError (through VenueInputError), so the command line reports it as one message before anything trades."""


@dataclass(frozen=True, slots=True)
class Credentials:
    key_env: str
    secret_env: str
    key: str = field(repr=False)
    secret: str = field(repr=False)

    def names(self) -> str:
        return f"{self.key_env} / {self.secret_env}"


def variable_names(exchange: str, key_env: str | None, secret_env: str | None) -> tuple[str, str]:
    """The variables to read: the config's, else <EXCHANGE>_TESTNET_KEY and <EXCHANGE>_TESTNET_SECRET."""
    prefix = exchange.upper().replace("-", "_")
    return key_env or f"{prefix}_TESTNET_KEY", secret_env or f"{prefix}_TESTNET_SECRET"


def read_credentials(exchange: str, key_env: str | None, secret_env: str | None,
                     environ: Mapping[str, str] | None = None) -> Credentials:
    """The testnet key and secret; one CredentialsError naming every variable that is unset or empty."""
    env = os.environ if environ is None else environ
    key_name, secret_name = variable_names(exchange, key_env, secret_env)
    missing = [name for name in (key_name, secret_name) if not env.get(name)]
    if missing:
        which = " and ".join(missing) + (" is" if len(missing) == 1 else " are")
        raise CredentialsError(f"venue.mode = 'sandbox' needs the {exchange} testnet API key and secret in the "
                               f"environment: {which} not set (venue.key_env and venue.secret_env name other "
                               f"variables). Nothing was sent to {exchange}")
    return Credentials(key_name, secret_name, env[key_name], env[secret_name])
