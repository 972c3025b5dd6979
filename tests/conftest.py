"""Shared test helpers: small configs, bar files and hand-built books. Nothing here reads ../shared."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.config import AppConfig, parse_config
from engine.model.instrument import Instrument

BASE_CONFIG: dict[str, Any] = {
    "session": {"starting_cash": 100_000.0, "equity_mark_seconds": 0.2, "status_seconds": 0.5},
    "venue": {"seed": 11, "speed": 600.0, "tick_interval_ms": 10.0, "latency_ms": 0.0},
    "instruments": [
        {"symbol": "BTC/USDT", "tick_size": 0.01, "lot_size": 0.0001, "min_qty": 0.0001, "min_notional": 10.0,
         "start_price": 60000.0, "daily_vol": 0.3, "spread_bps": 1.0, "depth": 0.5},
        {"symbol": "ETH/USDT", "tick_size": 0.01, "lot_size": 0.001, "min_qty": 0.001, "min_notional": 10.0,
         "start_price": 3000.0, "daily_vol": 0.3, "spread_bps": 1.5, "depth": 5.0},
        {"symbol": "SOL/USDT", "tick_size": 0.001, "lot_size": 0.01, "min_qty": 0.01, "min_notional": 10.0,
         "start_price": 150.0, "daily_vol": 0.3, "spread_bps": 2.5, "depth": 80.0},
    ],
    "strategies": [
        {"name": "sma_btc", "kind": "sma_crossover", "symbols": ["BTC/USDT"], "timeframe": "1m",
         "params": {"fast": 3, "slow": 8, "size": 0.05}},
        {"name": "rsi_eth", "kind": "rsi_momentum", "symbols": ["ETH/USDT"], "timeframe": "1m",
         "params": {"period": 5, "upper": 52.0, "lower": 48.0, "size": 1.0}},
        {"name": "bb_sol", "kind": "bollinger_mean_reversion", "symbols": ["SOL/USDT"], "timeframe": "1m",
         "params": {"period": 6, "k": 1.0, "size": 20.0}},
    ],
}


async def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    """Let the loop run until check() holds; fails after seconds."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.03)


def make_config(**sections: Any) -> AppConfig:
    """BASE_CONFIG with whole top-level sections replaced or dict sections updated."""
    data = copy.deepcopy(BASE_CONFIG)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return parse_config(data, "test-config")


@pytest.fixture
def config() -> AppConfig:
    return make_config()


def btc(**overrides: Any) -> Instrument:
    fields = dict(symbol="BTC/USDT", base="BTC", quote="USDT", tick_size=0.01, lot_size=0.001, min_qty=0.001,
                  min_notional=10.0, maker_fee=0.0002, taker_fee=0.0005)
    fields.update(overrides)
    return Instrument(**fields)


def write_bars(path: Path, n: int, seed: int = 3, start: str = "2024-01-01") -> Path:
    """A valid one-minute OHLCV CSV of n seeded random-walk bars."""
    rng = np.random.default_rng(seed)
    close = 30000 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[30000.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.001, n)) * close
    frame = pd.DataFrame({
        "timestamp": pd.date_range(start, periods=n, freq="1min").strftime("%Y-%m-%dT%H:%M:%S"),
        "open": open_.round(2), "high": (np.maximum(open_, close) + spread).round(2),
        "low": (np.minimum(open_, close) - spread).round(2), "close": close.round(2),
        "volume": rng.gamma(2.0, 5.0, n).round(4)})
    frame.to_csv(path, index=False)
    return path


class Raw(str):
    """TOML text written as it is, so inf, nan and 1e400 reach the parser as a user would type them."""


def toml_value(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def toml_text(data: dict[str, Any]) -> str:
    """A config dict as TOML: tables, arrays of tables, inline values."""
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()]
        else:
            for table in value:
                lines.append(f"[[{key}]]")
                lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def write_config(path: Path, data: dict[str, Any] | None = None) -> Path:
    """Write a config dict (BASE_CONFIG by default) as a TOML file."""
    path.write_text(toml_text(BASE_CONFIG if data is None else data), encoding="utf-8")
    return path
