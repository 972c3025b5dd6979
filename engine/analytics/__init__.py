"""Performance analytics over a session's equity curve and fills (pure functions, no I/O)."""
