"""Order management and the paper venue's fill simulator."""
