"""Write N one-minute OHLCV bars (seeded geometric Brownian motion) as CSV, like the peers' gen_bars.py."""

import sys

import numpy as np
import pandas as pd


def main(n: int, path: str, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    close = 30000 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    open_ = np.concatenate([[30000.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.0005, n)) * close
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S"),
        "open": open_.round(2), "high": (np.maximum(open_, close) + spread).round(2),
        "low": (np.minimum(open_, close) - spread).round(2), "close": close.round(2),
        "volume": rng.gamma(2.0, 5.0, n).round(4)})
    frame.to_csv(path, index=False)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
