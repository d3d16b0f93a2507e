"""Alembic's entry point: migrations run on the connection ``engine._migrate`` hands over
(``countersign migrate`` and the first connection of every process both go through it)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
