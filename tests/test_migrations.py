"""The migrations build exactly the schema the models declare, and go down and up again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from gristmill.migrations.runner import alembic_config, create_database, drop_database, upgrade
from gristmill.models import metadata
from gristmill.settings import Settings
from tests.support.services import private_database_url


def test_the_migrated_schema_matches_the_models(test_settings: Settings) -> None:
    engine = create_engine(test_settings.database_url.get_secret_value())
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_downgrade_and_upgrade_round_trip(test_settings: Settings) -> None:
    url = private_database_url(test_settings.database_url.get_secret_value(), "migrations")
    create_database(url)
    try:
        upgrade(url)
        command.downgrade(alembic_config(url), "base")
        upgrade(url)
    finally:
        drop_database(url)
