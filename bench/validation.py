"""Behaviour validation: how fast the twin backtest validates a session, and what the live score costs the loop.

Usage: bench/validation.py [--steps N] [--live-seconds S]
1. Builds a session of N market steps on the default config (40 steps are one wall second at the
   default 25 ms tick), and one on the default config with a 2 s venue latency and two feed gaps
   (a session with differences to prove), then times `validate` on each (load, twin replay,
   matching, causes) with the counterfactual proofs off (proof_budget_s = 0) and on (the default).
2. Runs the default paper session for S wall seconds twice, the live score off and then every
   second (its floor), probing the event loop's lag every millisecond both times.
Lines: validate session=default|late_gaps proofs=off|on steps=... events=... decisions=... differences=...
           unexplained=... validate_s=... events_per_s=...
       live=off|1s loop_lag_max_ms=... loop_lag_p99_ms=... scores=...
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from store_writer import lag_probe  # noqa: E402

from engine.config import AppConfig, FeedGapConfig, load_config  # noqa: E402
from engine.session import PaperSession  # noqa: E402
from engine.store.read import behaviour_scores, open_reader  # noqa: E402
from engine.validation.validate import validate  # noqa: E402

CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def late_with_gaps(config: AppConfig) -> AppConfig:
    """The default config on a venue 2 s late, with two feed gaps (3 and 2 minutes of market time)."""
    gaps = [FeedGapConfig(start_minutes=300, minutes=3), FeedGapConfig(start_minutes=900, minutes=2)]
    return config.model_copy(update={"venue": config.venue.model_copy(update={"latency_ms": 2000.0,
                                                                              "feed_gaps": gaps})})


async def build(db: Path, steps: int, late_gaps: bool = False) -> None:
    config = load_config(CONFIG)
    if late_gaps:
        config = late_with_gaps(config)
    step_ns = int(config.venue.tick_interval_ms * 1e6 * config.venue.speed)
    session = PaperSession(config, db_path=db)
    await session.open()
    start = session.clock.now_ns()
    for i in range(1, steps + 1):
        session.step(start + i * step_ns)
        if i % 200 == 0:
            await session.writer.make_room()
    await session.close()


async def live(db: Path, seconds: float, every: float | None) -> tuple[list[float], int]:
    config = load_config(CONFIG)
    config = config.model_copy(update={"validation": config.validation.model_copy(
        update={"live_interval_seconds": every})})
    session = PaperSession(config, db_path=db, new_session=True)
    samples: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(lag_probe(samples, stop))
    await session.run(duration=seconds)
    stop.set()
    await probe
    conn = open_reader(db)
    try:
        scores = len(behaviour_scores(conn, session.session_id))
    finally:
        conn.close()
    return sorted(samples), scores


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40 * 600, help="market steps (default: 10 wall minutes)")
    ap.add_argument("--live-seconds", type=float, default=20.0, help="wall seconds per live-score phase")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("default", "late_gaps"):
            db = Path(tmp) / f"{name}.sqlite"
            await build(db, args.steps, late_gaps=name == "late_gaps")
            stored = load_config(CONFIG).validation
            for proofs, thresholds in (("off", stored.model_copy(update={"proof_budget_s": 0.0})), ("on", stored)):
                started = time.perf_counter()
                report = validate(db, thresholds=thresholds)
                took = time.perf_counter() - started
                s = report.score
                unexplained = sum(1 for d in report.differences if not d.explained)
                print(f"validate session={name} proofs={proofs} steps={args.steps} events={report.market_events} "
                      f"decisions={s.paper_decisions} score={s.score} differences={len(report.differences)} "
                      f"unexplained={unexplained} validate_s={took:.2f} "
                      f"events_per_s={report.market_events / took:.0f}", flush=True)
        for label, every in (("off", None), ("1s", 1.0)):
            lags, scores = await live(Path(tmp) / f"live-{label}.sqlite", args.live_seconds, every)
            p99 = lags[int(len(lags) * 0.99)]
            print(f"live={label} loop_lag_max_ms={lags[-1] * 1000:.2f} loop_lag_p99_ms={p99 * 1000:.2f} "
                  f"scores={scores}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
