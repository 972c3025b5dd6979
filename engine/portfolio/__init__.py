"""Cash, positions, P&L and the equity curve."""
