"""Migrations: one schema and one version table per service, idempotent, in step with the models."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mailmerger.migrate import migrate
from mailmerger.services import registry
from mailmerger_shared.settings import DatabaseSettings

SERVICES = ["auth", "templates", "queue", "sender", "storage"]


@pytest.fixture
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(migrated_database)
    yield engine
    await engine.dispose()


async def test_each_service_has_its_schema_with_its_own_version_table(engine: AsyncEngine) -> None:
    """Five schemas, each holding an alembic_version table at a revision."""
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                text(
                    "SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version'"
                )
            )
        ).scalars()
        schemas = sorted(rows)
        assert schemas == sorted(SERVICES)
        for schema in SERVICES:
            version = (
                await connection.execute(text(f'SELECT version_num FROM "{schema}".alembic_version'))
            ).scalar()
            assert version


async def _snapshot(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = ANY(:schemas) ORDER BY 1, 2, 3"
            ),
            {"schemas": SERVICES},
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def test_migrating_twice_changes_nothing(engine: AsyncEngine, migrated_database: str) -> None:
    """A second `migrate all` leaves every schema exactly as it was."""
    before = await _snapshot(engine)
    await migrate("all", database=DatabaseSettings(url=migrated_database))
    assert await _snapshot(engine) == before


@pytest.mark.parametrize("service", SERVICES)
async def test_migrations_and_models_agree(engine: AsyncEngine, service: str) -> None:
    """Autogenerate finds no difference between a service's models and its migrated schema."""
    package = registry()[service].package
    models = __import__(f"{package}.models", fromlist=["metadata"])
    metadata: MetaData = models.metadata

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, parents: type_ != "schema" or name == metadata.schema,
                "version_table_schema": metadata.schema,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        return list(compare_metadata(context, metadata))

    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == [], f"{service}: run `mailmerger makemigrations {service}`: {differences}"


async def test_unknown_service_is_refused(migrated_database: str) -> None:
    """`migrate nosuch` names the valid choices."""
    with pytest.raises(SystemExit, match="choose from"):
        await migrate("nosuch", database=DatabaseSettings(url=migrated_database))
