"""Configs for validation tests (sessions are stepped by tests.store.helpers.stepped_session)."""

from __future__ import annotations

from typing import Any

from engine.config import AppConfig
from engine.runtime import ideal_venue
from tests.conftest import make_config

# breakers an injected fault trips in turn (a lagging venue pauses at its first order, late fills lose trades in
# a row): off, so each difference shows the fault itself rather than the breaker it tripped
FAULT_BREAKERS_OFF = {"order_latency_seconds": None, "consecutive_losses": None, "daily_loss": None, "drawdown": None}


def venue_config(**venue: Any) -> AppConfig:
    """The test config on the parity venue, with venue settings changed and FAULT_BREAKERS_OFF."""
    config = ideal_venue(make_config(breakers=FAULT_BREAKERS_OFF))
    return config.model_copy(update={"venue": config.venue.model_copy(update=venue)})
