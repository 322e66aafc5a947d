"""Alembic, one history per service, each with its version table inside its own schema.

A service's ``migrations/env.py`` is two lines: import its metadata and call ``run_env``.
``upgrade`` is what ``mailmerger migrate`` and the test fixtures call.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

VERSION_TABLE = "alembic_version"


def alembic_config(package: str, url: str) -> Config:
    """Alembic configuration for ``package``'s ``migrations`` folder, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(resources.files(package) / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    # Date-prefixed revision files sort in the order they were written.
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def upgrade(package: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(package, url), revision)


def _configure(connection: Connection, metadata: MetaData) -> None:
    schema = metadata.schema
    assert schema, "every service's metadata names its schema"
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))

    def only_own_schema(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "schema":
            return name == schema
        return getattr(obj, "schema", schema) == schema

    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        version_table_schema=schema,
        include_schemas=True,
        include_name=lambda name, type_, parent_names: type_ != "schema" or name == schema,
        include_object=only_own_schema,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_env(metadata: MetaData) -> None:
    """Body of every service's ``env.py``: run migrations online over an async engine."""

    async def run() -> None:
        engine = create_async_engine(context.config.get_main_option("sqlalchemy.url") or "")
        try:
            async with engine.connect() as connection:
                await connection.run_sync(_configure, metadata)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())
