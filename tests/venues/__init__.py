"""Venue adapters driven against loopback fakes."""
