"""Market data: the simulated venue's feed, bar files, recordings and bars built from ticks."""
