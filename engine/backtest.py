"""Backtest = replay: the same Engine driven by a SimClock over recorded or file market data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.clock import SimClock
from engine.config import AppConfig
from engine.core import Engine, Journal
from engine.data.bar_file import load_bar_file
from engine.data.recording import is_recording, load_recording
from engine.execution.fill_model import FillModel
from engine.model.market import MarketEvent
from engine.replay import replay
from engine.runtime import build_engine
from engine.strategy.base import Strategy
from engine.strategy.registry import strategy_class


class BacktestInputError(ValueError):
    """A backtest asked for something the config or the data cannot give."""


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """What a backtest did: the engine (decisions, orders, fills, equity curve) and the event count."""

    engine: Engine
    events: int
    data: str

    def lines(self) -> list[str]:
        engine = self.engine
        account = engine.account
        equity = account.equity()
        curve = [e for _, e in engine.equity_curve] or [account.starting_cash]
        peak, max_dd = curve[0], 0.0
        for value in curve:
            peak = max(peak, value)
            max_dd = max(max_dd, (peak - value) / peak if peak > 0 else 0.0)
        out = [f"data={self.data} events={self.events}"]
        for strategy in engine.strategies.values():
            n_dec = sum(1 for d in engine.decisions if d.strategy == strategy.name)
            n_ord = sum(1 for o in engine.orders.values() if o.strategy == strategy.name)
            out.append(f"strategy={strategy.name} kind={strategy.kind} status={strategy.status.value} "
                       f"decisions={n_dec} orders={n_ord}" + (f" error={strategy.error!r}" if strategy.error else ""))
        out.append(f"orders={len(engine.orders)} fills={len(engine.fills)} fees={account.fees_paid:.2f} "
                   f"final_equity={equity:.2f} return={(equity / account.starting_cash - 1) * 100:+.2f}% "
                   f"max_drawdown={max_dd * 100:.2f}%")
        return out


def run_backtest(config: AppConfig, data: str | Path, strategy_kind: str | None = None,
                 params: dict[str, Any] | None = None, symbol: str | None = None,
                 timeframe: str | None = None) -> BacktestResult:
    """Replay a bar file (CSV) or a session recording (.jsonl) through config's engine.

    With strategy_kind, that one strategy trades symbol (default: the first instrument);
    otherwise config's own strategies run, as they did in the paper session.
    """
    symbols = [i.symbol for i in config.instruments]
    symbol = symbol or symbols[0]
    if symbol not in symbols:
        raise BacktestInputError(f"--symbol {symbol!r} is not an instrument in the config; "
                                 f"instruments: {', '.join(symbols)}")
    if is_recording(data):
        events: Iterable[MarketEvent] = load_recording(data)
        file_timeframe = None
    else:
        bars = load_bar_file(data, symbol, timeframe)
        events, file_timeframe = bars.bars(), bars.timeframe
    strategies = None
    if strategy_kind is not None:
        strategies = [strategy_class(strategy_kind)(strategy_kind, [symbol], file_timeframe or timeframe or "1m",
                                                    params or {})]
    elif file_timeframe is not None:
        # config strategies on a bar file see its bars whatever timeframe they were configured with
        strategies = [strategy_class(s.kind)(s.name, s.symbols, file_timeframe, s.params)
                      for s in config.strategies if symbol in s.symbols]
        if not strategies:
            raise BacktestInputError(f"no strategy in the config trades {symbol}; pass --strategy")
    engine, count = backtest_events(config, events, strategies)
    return BacktestResult(engine, count, str(data))


def backtest_events(config: AppConfig, events: Iterable[MarketEvent], strategies: list[Strategy] | None = None,
                    fill_model: FillModel | None = None, journal: Journal | None = None,
                    data_due_from: int | None = None) -> tuple[Engine, int]:
    """The backtest itself: config's engine (or its given strategies and venue) replaying events on a SimClock.

    data_due_from: every configured instrument is expected to deliver data from then on, as in the paper session
    being replayed (a symbol that never does goes stale there, and so here).
    """
    engine = build_engine(config, SimClock(), strategies, fill_model)
    engine.journal = journal
    if data_due_from is not None:
        engine.guard.health.expect(engine.instruments, data_due_from)
    return engine, replay(engine, events)
