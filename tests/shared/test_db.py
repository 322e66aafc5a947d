"""The engine's pool: a connection the server closed is replaced, not handed out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mailmerger_shared.db import asyncpg_dsn, autocommit, create_engine, create_sessionmaker, transaction
from mailmerger_shared.settings import DatabaseSettings

APPLICATION = "test-db-pool"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(url=database_url, pool_size=1), application_name=APPLICATION)
    yield engine
    await engine.dispose()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with transaction(create_sessionmaker(engine)) as session:
        return int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_the_server_closed_is_replaced_without_an_error(
    engine: AsyncEngine, database_url: str
) -> None:
    """A restart (here: the backend terminated) costs the next unit of work nothing."""
    first = await _backend_pid(engine)
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await admin.close()
    await asyncio.sleep(0.2)  # the idle pooled connection reads the server's goodbye meanwhile

    second = await _backend_pid(engine)  # no error: the pool opened a new connection

    assert second != first


async def test_a_checkout_costs_no_round_trip(engine: AsyncEngine) -> None:
    """A unit of work is BEGIN, its statements, COMMIT: no liveness check around it.

    (``pool_pre_ping`` ran a transaction of its own, BEGIN ; ROLLBACK, on every checkout.)
    """
    sent: list[str] = []
    async with transaction(create_sessionmaker(engine)) as session:
        raw = await (await session.connection()).get_raw_connection()
        assert isinstance(raw.driver_connection, asyncpg.Connection)
        raw.driver_connection.add_query_logger(lambda record: sent.append(record.query))
    sent.clear()  # the pool (one connection) hands out the same connection from here on

    for _ in range(10):
        await _backend_pid(engine)

    # (Prepared statements are not logged: the SELECT is not listed.)
    assert sent == ["BEGIN;", "COMMIT;"] * 10


async def test_autocommit_sends_neither_begin_nor_commit(engine: AsyncEngine) -> None:
    sessions = create_sessionmaker(engine)
    sent: list[str] = []
    async with transaction(sessions) as session:
        raw = await (await session.connection()).get_raw_connection()
        assert isinstance(raw.driver_connection, asyncpg.Connection)
        raw.driver_connection.add_query_logger(lambda record: sent.append(record.query))
    sent.clear()

    async with autocommit(sessions) as session:
        await session.execute(text("CREATE TEMPORARY TABLE t (n int)"))
        await session.execute(text("INSERT INTO t VALUES (1)"))
    async with transaction(sessions) as session:  # the connection is transactional again
        count = (await session.execute(text("SELECT count(*) FROM t"))).scalar_one()

    assert count == 1
    # Only the transaction's: its BEGIN names the isolation level the connection was reset to.
    assert [query.split()[0] for query in sent] == ["BEGIN", "COMMIT;"], sent


def test_asyncpg_dsn_drops_what_only_sqlalchemy_reads() -> None:
    """The dispatcher's listener and the admin connections use plain asyncpg: a dialect parameter
    in MM_DB_URL would reach PostgreSQL as an unknown setting and fail the connect."""
    url = "postgresql+asyncpg://u:p%40ss@db:5432/mm?prepared_statement_cache_size=0&sslmode=require"
    assert asyncpg_dsn(url) == "postgresql://u:p%40ss@db:5432/mm?sslmode=require"


async def test_asyncpg_connects_with_a_url_carrying_dialect_parameters(database_url: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(f"{database_url}?prepared_statement_cache_size=0"))
    try:
        assert await connection.fetchval("SELECT 1") == 1
    finally:
        await connection.close()
