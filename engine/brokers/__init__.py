"""Venues that take orders, behind one Broker protocol (broker.py); paper.py is the simulated venue."""
