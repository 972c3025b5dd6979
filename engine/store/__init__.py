"""Persistence on SQLite: schema and migrations, one writer task, recovery, the audit chain, read models."""
