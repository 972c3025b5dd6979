"""Trading states, circuit breakers and the market-data health they watch."""
