"""``mailmerger migrate``: create the database when missing, then upgrade each service's schema."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from alembic import command
from sqlalchemy.exc import ArgumentError

from mailmerger.preflight import StartupError, describe_database_error
from mailmerger.services import registry
from mailmerger_shared.db import ensure_database
from mailmerger_shared.migrations import alembic_config, upgrade
from mailmerger_shared.settings import DatabaseSettings, load

log = logging.getLogger(__name__)


async def migrate(which: str = "all", *, database: DatabaseSettings | None = None) -> list[str]:
    """Create the database if missing, upgrade each service's schema; the services migrated."""
    database = database or load(DatabaseSettings)
    services = registry()
    names = list(services) if which == "all" else [which]
    unknown = [name for name in names if name not in services]
    if unknown:
        raise SystemExit(f"unknown service {unknown[0]!r}; choose from {', '.join(services)} or 'all'")
    try:
        created = await ensure_database(database.url)
    except (OSError, ValueError, ArgumentError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StartupError(describe_database_error(exc, database.url)) from None
    if created:
        log.info("created database", extra={"url": database.url.rsplit("@", 1)[-1]})
    for name in names:
        # Alembic drives its own event loop inside env.py; give it a thread of its own.
        await asyncio.to_thread(upgrade, services[name].package, database.url)
        log.info("migrated", extra={"service": name})
    return names


def make_migration(service: str, message: str) -> None:
    database = load(DatabaseSettings)
    package = registry()[service].package
    command.revision(alembic_config(package, database.url), message=message, autogenerate=True)
