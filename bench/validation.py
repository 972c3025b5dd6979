"""Behaviour validation: how fast the twin backtest validates a session, and what the live score costs the loop.

Usage: bench/validation.py [--steps N] [--live-seconds S]
1. Builds a session of N market steps on the default config (40 steps are one wall second at the
   default 25 ms tick), then times `validate` on it (load, twin replay, matching, causes).
2. Runs the default paper session for S wall seconds twice, the live score off and then every
   second (its floor), probing the event loop's lag every millisecond both times.
Lines: validate steps=... events=... decisions=... differences=... unexplained=... validate_s=... events_per_s=...
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

from engine.config import load_config  # noqa: E402
from engine.session import PaperSession  # noqa: E402
from engine.store.read import behaviour_scores, open_reader  # noqa: E402
from engine.validation.validate import validate  # noqa: E402

CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


async def build(db: Path, steps: int) -> None:
    config = load_config(CONFIG)
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
        db = Path(tmp) / "bench.sqlite"
        await build(db, args.steps)
        started = time.perf_counter()
        report = validate(db)
        took = time.perf_counter() - started
        s = report.score
        unexplained = sum(1 for d in report.differences if not d.explained)
        print(f"validate steps={args.steps} events={report.market_events} decisions={s.paper_decisions} "
              f"score={s.score} differences={len(report.differences)} unexplained={unexplained} "
              f"validate_s={took:.2f} events_per_s={report.market_events / took:.0f}", flush=True)
        for label, every in (("off", None), ("1s", 1.0)):
            lags, scores = await live(Path(tmp) / f"live-{label}.sqlite", args.live_seconds, every)
            p99 = lags[int(len(lags) * 0.99)]
            print(f"live={label} loop_lag_max_ms={lags[-1] * 1000:.2f} loop_lag_p99_ms={p99 * 1000:.2f} "
                  f"scores={scores}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
