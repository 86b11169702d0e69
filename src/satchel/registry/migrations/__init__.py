"""Alembic migrations of the registry schema (run by :mod:`satchel.registry.schema`)."""
