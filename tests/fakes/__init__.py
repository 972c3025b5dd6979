"""Loopback fakes of real venues, so tests can drive the real client libraries with no network."""
