"""Checking the infrastructure before anything starts: one line naming the setting and what to do.

A wrong ``MM_DB_URL`` used to end start-up with a traceback of a few hundred lines that never said
"database"; a RabbitMQ vhost that does not exist with ``InvalidFrameError``. Each check here asks
its server once (the broker: until ``MM_AMQP_STARTUP_WAIT_SECONDS``, as every process waits for
it) and turns what goes wrong into a ``StartupError`` whose message is the whole story.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator
from urllib.parse import unquote, urlsplit

import aio_pika
import asyncpg
import redis.asyncio as aioredis
from aiormq.exceptions import AMQPConnectionError, ProbableAuthenticationError, ProtocolSyntaxError
from alembic.script import ScriptDirectory
from redis import exceptions as redis_errors
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from mailmerger_shared.db import asyncpg_dsn
from mailmerger_shared.migrations import VERSION_TABLE, alembic_config
from mailmerger_shared.settings import BrokerSettings, DatabaseSettings, RedisSettings

CONNECT_TIMEOUT = 10.0
_MIGRATE = "run `mailmerger migrate` (`make run` does it first)"
# Never the value itself: it may hold a password.
_NOT_POSTGRES = (
    "MM_DB_URL is not a PostgreSQL URL: expected postgresql+asyncpg://USER:PASSWORD@HOST:5432/NAME"
)


class StartupError(Exception):
    """Start-up cannot go on; the message (one line) names the setting and what to do."""


Say = Callable[[str], None]


def _where(url: str, default_port: int) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or default_port}"


def _refused_or_unreachable(exc: BaseException) -> str | None:
    """ "connection refused" and friends for an error of the network itself; None otherwise."""
    if isinstance(exc, ConnectionRefusedError) or "Connect call failed" in str(exc):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:.0f} s"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return None


# --- PostgreSQL --------------------------------------------------------------------------------


def describe_database_error(exc: BaseException, url: str) -> str:
    """One line about ``exc``, raised while connecting to the database at ``url``."""
    where, variable = _where(url, 5432), "MM_DB_URL"
    try:
        target = make_url(url)
    except ArgumentError:
        return _NOT_POSTGRES
    if not target.drivername.startswith("postgresql") or isinstance(exc, ArgumentError | ValueError):
        return _NOT_POSTGRES
    network = _refused_or_unreachable(exc)
    if network is not None:
        return (
            f"cannot reach PostgreSQL at {where} ({variable}): {network}; start PostgreSQL or fix {variable}"
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"the database {target.database!r} does not exist at {where} ({variable}): {_MIGRATE}"
    if isinstance(exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError):
        return (
            f"PostgreSQL at {where} refused user {target.username!r} ({variable}): "
            f"{_first_line(exc)}; fix the user or password in {variable}"
        )
    return f"the database at {where} ({variable}) failed: {type(exc).__name__}: {_first_line(exc)}"


async def _connect_database(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(asyncpg_dsn(url), timeout=CONNECT_TIMEOUT)
    except (ArgumentError, ValueError) as exc:
        raise StartupError(describe_database_error(exc, url)) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StartupError(describe_database_error(exc, url)) from None


async def check_database(database: DatabaseSettings, packages: Iterable[str]) -> None:
    """The database answers, and every service's schema is migrated to its latest revision."""
    connection = await _connect_database(database.url)
    try:
        behind = []
        for package in packages:
            schema = importlib.import_module(f"{package}.models").metadata.schema
            head = set(ScriptDirectory.from_config(alembic_config(package, database.url)).get_heads())
            table = await connection.fetchval("SELECT to_regclass($1)", f'"{schema}".{VERSION_TABLE}')
            current = set()
            if table is not None:
                query = f'SELECT version_num FROM "{schema}".{VERSION_TABLE}'  # noqa: S608 (our own names)
                current = {row[0] for row in await connection.fetch(query)}
            if current != head:
                behind.append(schema)
    finally:
        await connection.close()
    if behind:
        where = _where(database.url, 5432)
        raise StartupError(
            f"the database at {where} (MM_DB_URL) is not migrated ({', '.join(behind)}): {_MIGRATE}"
        )


# --- Redis -------------------------------------------------------------------------------------


async def check_redis(settings: RedisSettings) -> None:
    where, variable = _where(settings.url, 6379), "MM_REDIS_URL"
    try:
        client = aioredis.Redis.from_url(settings.url, socket_connect_timeout=CONNECT_TIMEOUT)
    except ValueError:
        raise StartupError(f"{variable} is not a Redis URL: expected redis://HOST:6379/0") from None
    try:
        await client.ping()
    except redis_errors.AuthenticationError as exc:
        raise StartupError(f"Redis at {where} refused the credentials of {variable}: {exc}") from None
    except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
        cause = _refused_or_unreachable(exc.__cause__ or exc) or _first_line(exc)
        raise StartupError(
            f"cannot reach Redis at {where} ({variable}): {cause}; start Redis or fix {variable}"
        ) from None
    except redis_errors.RedisError as exc:
        raise StartupError(f"Redis at {where} ({variable}) failed: {_first_line(exc)}") from None
    finally:
        await client.aclose()


# --- RabbitMQ ----------------------------------------------------------------------------------


def describe_broker_error(exc: BaseException, url: str) -> str | None:
    """One line about an error the broker will not outgrow by waiting; None for one it may (it is
    not up yet)."""
    parts, variable = urlsplit(url), "MM_AMQP_URL"
    where = _where(url, 5672)
    if isinstance(exc, ProbableAuthenticationError):
        return (
            f"RabbitMQ at {where} refused user {unquote(parts.username or 'guest')!r} ({variable}): "
            f"fix the user or password in {variable}"
        )
    if isinstance(exc, ProtocolSyntaxError) and "Connection.Close" in str(exc):
        # RabbitMQ closes the connection at Connection.Open: the vhost is missing or forbidden.
        vhost = unquote(parts.path[1:]) or "/"
        user = unquote(parts.username or "guest")
        return (
            f"RabbitMQ at {where} has no virtual host {vhost!r} that user {user!r} may use ({variable}): "
            f"create it (rabbitmqctl add_vhost {vhost} && rabbitmqctl set_permissions -p {vhost} {user} "
            f"'.*' '.*' '.*') or fix {variable}"
        )
    if isinstance(exc, ValueError):
        return f"{variable} is not an AMQP URL: expected amqp://USER:PASSWORD@HOST:5672/VHOST"
    if isinstance(exc, AMQPConnectionError | OSError):
        return None
    return f"RabbitMQ at {where} ({variable}) failed: {type(exc).__name__}: {_first_line(exc)}"


async def check_broker(settings: BrokerSettings, say: Say) -> None:
    """Connect once, waiting up to ``startup_wait_seconds`` for a broker that is not up yet."""
    if urlsplit(settings.url).scheme not in ("amqp", "amqps"):
        raise StartupError(describe_broker_error(ValueError(), settings.url) or "")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.startup_wait_seconds
    where, waiting = _where(settings.url, 5672), False
    while True:
        try:
            with _quiet("aiormq.connection"):  # it logs each failed attempt; this says it once
                connection = await aio_pika.connect(settings.url, timeout=CONNECT_TIMEOUT)
        except Exception as exc:
            problem = describe_broker_error(exc, settings.url)
            if problem is not None:
                raise StartupError(problem) from None
            if loop.time() >= deadline:
                raise StartupError(
                    f"cannot reach RabbitMQ at {where} (MM_AMQP_URL) after waiting "
                    f"{settings.startup_wait_seconds:.0f} s (MM_AMQP_STARTUP_WAIT_SECONDS): start RabbitMQ "
                    "or fix MM_AMQP_URL"
                ) from None
            if not waiting:
                say(
                    f"waiting for RabbitMQ at {where} (MM_AMQP_URL), up to "
                    f"{settings.startup_wait_seconds:.0f} s (MM_AMQP_STARTUP_WAIT_SECONDS)"
                )
                waiting = True
            await asyncio.sleep(min(1.0, max(deadline - loop.time(), 0.0)))
            continue
        await connection.close()
        return


async def check_infrastructure(
    database: DatabaseSettings,
    redis: RedisSettings,
    broker: BrokerSettings,
    *,
    packages: Iterable[str],
    say: Say,
) -> None:
    """PostgreSQL (migrated), Redis, then RabbitMQ; ``say`` gets one line per one that is fine."""
    checks: list[tuple[str, str, Callable[[], Awaitable[None]]]] = [
        ("PostgreSQL", _where(database.url, 5432), lambda: check_database(database, packages)),
        ("Redis", _where(redis.url, 6379), lambda: check_redis(redis)),
        ("RabbitMQ", _where(broker.url, 5672), lambda: check_broker(broker, say)),
    ]
    for name, where, check in checks:
        await check()
        say(f"{name:<16} {where}")


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    target = logging.getLogger(logger)
    level = target.level
    target.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        target.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
