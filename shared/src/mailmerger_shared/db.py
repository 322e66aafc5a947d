"""PostgreSQL access: one async engine per service, one explicit transaction per unit of work.

Handlers never commit. A request (or a consumed message) runs inside exactly one
``session.begin()`` block: it commits when the work returns and rolls back when it raises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import MetaData, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from mailmerger_shared.settings import DatabaseSettings

# Constraint names are part of the schema: name them deterministically so that migrations and
# models agree and an IntegrityError can be mapped to a message by constraint name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    """The metadata of one service: every table lives in the service's own schema."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def create_engine(settings: DatabaseSettings, *, application_name: str) -> AsyncEngine:
    engine = create_async_engine(
        settings.url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        echo=settings.echo,
        connect_args={"server_settings": {"application_name": application_name}},
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def _replace_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Hand out no pooled connection the server has closed (a restart): the pool opens a new one.

    Instead of ``pool_pre_ping``, which costs three round trips (BEGIN, a query, ROLLBACK) on
    every checkout, nearly doubling those of a one-statement transaction: asyncpg reads from every
    connection, idle ones too, so a server that went away has already been noticed by the time
    the connection is taken. A connection silently cut by the network in between is not, and
    fails its first statement, which invalidates the pool (SQLAlchemy's "optimistic" handling).
    """
    if proxy.driver_connection.is_closed():
        raise exc.DisconnectionError("PostgreSQL closed this pooled connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: values read in a transaction stay usable after it commits.
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits on return, rolls back on error."""
    async with sessions() as session, session.begin():
        yield session


@asynccontextmanager
async def autocommit(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work that is one statement: each statement commits by itself.

    For hot paths written as a single statement (data-modifying CTEs make a statement of several
    writes, atomically): it saves BEGIN and COMMIT, two of the three round trips of such a
    transaction. Nothing to roll back: a statement that fails changed nothing.
    """
    async with sessions() as session:
        _ = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


# Query parameters SQLAlchemy's asyncpg dialect reads itself: asyncpg would pass them on to the
# server as settings, and the server refuses to connect with a setting it does not know.
_DIALECT_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback")


def asyncpg_dsn(url: str) -> str:
    """``url`` (SQLAlchemy's) as ``asyncpg.connect`` takes it."""
    dsn = make_url(url).set(drivername="postgresql").difference_update_query(_DIALECT_ONLY)
    return dsn.render_as_string(hide_password=False)


async def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` when it does not exist yet. True when created."""
    target = make_url(url)
    name = target.database
    if not name:
        raise ValueError(f"database URL names no database: {url}")
    admin = asyncpg_dsn(url).rsplit("/", 1)[0] + "/postgres"
    connection = await asyncpg.connect(admin)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        await connection.execute(f"CREATE DATABASE {quoted}")
        return True
    finally:
        await connection.close()


async def drop_database(url: str) -> None:
    """Drop the database named in ``url`` (tests use this to clean up after themselves)."""
    name = make_url(url).database
    admin = asyncpg_dsn(url).rsplit("/", 1)[0] + "/postgres"
    connection = await asyncpg.connect(admin)
    try:
        quoted = '"' + (name or "").replace('"', '""') + '"'
        await connection.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
    finally:
        await connection.close()
