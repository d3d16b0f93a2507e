"""Migrations bring a database made by an earlier release forward, on both backends: an
upgrade that is reported, then rolled back, would leave every server on the old schema."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from pipeline.record import engine

FIRST = "0001"


def downgrade(target: str, revision: str) -> None:
    """Take the database ``target`` back to ``revision`` with Alembic, as an older release
    would have left it."""
    config = Config()
    config.set_main_option("script_location", str(engine.MIGRATIONS))
    migrations = create_engine(engine.database_url(target))
    try:
        with migrations.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
    finally:
        migrations.dispose()


def version(target: str) -> str:
    """Return the revision the database ``target`` is at, read on a connection of its own
    (the project's engines migrate on their first connection)."""
    reader = create_engine(engine.database_url(target))
    try:
        with reader.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        reader.dispose()


def test_migrate_brings_an_older_database_to_the_newest_schema(database_target):
    assert engine.migrate(database_target) == (None, engine.HEAD_REVISION)
    downgrade(database_target, FIRST)
    assert version(database_target) == FIRST

    assert engine.migrate(database_target) == (FIRST, engine.HEAD_REVISION)
    assert version(database_target) == engine.HEAD_REVISION
