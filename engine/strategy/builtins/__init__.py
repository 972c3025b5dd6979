"""Built-in strategies; importing this package registers them."""

from engine.strategy.builtins import bollinger_mean_reversion, rsi_momentum, sma_crossover

__all__ = ["bollinger_mean_reversion", "rsi_momentum", "sma_crossover"]
