"""The reference SMA crossover (../shared/bench/peers/README.md) through the ordinary backtest path.

Usage: bench/sma_replay.py CSV [--fast N --slow N --size X --commission C] [--with-risk]
Last line: bars=N orders=N final_equity=X seconds=S bars_per_s=R
Timing starts after the file is read and validated (as the peers' timing starts after read_csv)
and covers building Bar values, the engine, the strategy, the venue and the account.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.clock import SimClock  # noqa: E402
from engine.core import Engine  # noqa: E402
from engine.data.bar_file import load_bar_file  # noqa: E402
from engine.model.instrument import Instrument  # noqa: E402
from engine.replay import replay  # noqa: E402
from engine.strategy.builtins.sma_crossover import SmaCrossover  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=30)
    ap.add_argument("--size", type=float, default=0.1)
    ap.add_argument("--commission", type=float, default=0.001)
    ap.add_argument("--symbol", default="BTC/USDT")
    ap.add_argument("--with-risk", action="store_true",
                    help="config.toml's [risk] and [breakers] (the peers have none: off by default)")
    a = ap.parse_args()
    bars = load_bar_file(a.csv, a.symbol)
    instrument = Instrument(a.symbol, *a.symbol.split("/"), tick_size=0.01, lot_size=1e-8, min_qty=1e-8,
                            min_notional=0.0, maker_fee=a.commission, taker_fee=a.commission)
    t0 = time.perf_counter()
    strategy = SmaCrossover("sma", [a.symbol], bars.timeframe, {"fast": a.fast, "slow": a.slow, "size": a.size})
    rules = None
    if a.with_risk:
        from engine.config import load_config
        from engine.risk.manager import RiskRules

        config = load_config(Path(__file__).resolve().parent.parent / "config.toml")
        rules = RiskRules(config.risk.model_copy(update={"max_order_notional": None, "max_position_notional": None}),
                          config.breakers)
    engine = Engine(SimClock(), [instrument], 1_000_000.0, [strategy], risk_rules=rules)
    n = replay(engine, bars.bars())
    dt = time.perf_counter() - t0
    print(f"decisions={len(engine.decisions)} fills={len(engine.fills)} fees={engine.account.fees_paid:.2f}")
    print(f"bars={n} orders={len(engine.orders)} final_equity={engine.account.equity():.2f} "
          f"seconds={dt:.2f} bars_per_s={n / dt:.0f}")


if __name__ == "__main__":
    main()
