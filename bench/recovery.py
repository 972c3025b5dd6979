"""How long a restart takes: resuming a session replays its saved market data through a fresh engine.

Usage: bench/recovery.py [--steps N]
Builds a session of N market steps on the default config (3 symbols, 3 strategies; 40 steps are
one wall second at the default 25 ms tick), saves it, drops it as kill -9 would, then times
PaperSession.open() on it, which checks the file (quick_check), replays and verifies.
Last line: steps=N events=N db_mb=X check_s=X resume_s=X events_per_s=X wall_hour_resume_s=X
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.config import load_config  # noqa: E402
from engine.session import PaperSession  # noqa: E402
from engine.store.database import check_database  # noqa: E402


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40 * 600, help="market steps (default: 10 wall minutes)")
    args = ap.parse_args()
    config = load_config(Path(__file__).resolve().parent.parent / "config.toml")
    step_ns = int(config.venue.tick_interval_ms * 1e6 * config.venue.speed)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.sqlite"
        session = PaperSession(config, db_path=db)
        await session.open()
        start = session.clock.now_ns()
        for i in range(args.steps):
            session.step(start + (i + 1) * step_ns)
            if i % 400 == 0:
                await session.writer.flush()
        await session.writer.close()  # saved, but the session is left RUNNING, as after kill -9
        session._lock.release()
        events = session.journal.market_seq
        size_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6

        started = time.perf_counter()
        check_database(db)
        check_s = time.perf_counter() - started
        resumed = PaperSession(config, db_path=db)
        started = time.perf_counter()
        await resumed.open()
        resume_s = time.perf_counter() - started
        assert resumed.recovered is not None and resumed.recovered.events == events
        await resumed.writer.close()
        steps_per_wall_hour = 3600 / (config.venue.tick_interval_ms / 1000)
        per_hour = resume_s / args.steps * steps_per_wall_hour
        print(f"steps={args.steps} events={events} fills={len(resumed.engine.fills)} db_mb={size_mb:.1f} "
              f"db_mb_per_wall_hour={size_mb / args.steps * steps_per_wall_hour:.0f} check_s={check_s:.2f} "
              f"resume_s={resume_s:.2f} events_per_s={events / resume_s:.0f} wall_hour_resume_s={per_hour:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
