"""Strategies: the base class, the registry, indicators and the built-ins."""
