"""Pre-trade checks, position sizing, risk phases and the manager that applies them."""
