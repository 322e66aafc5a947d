"""Opening and closing the infrastructure a process uses, in one lifespan.

Resources close in reverse order of opening; a failure while closing one is logged and the rest
are still closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import redis.asyncio as aioredis
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailmerger_shared.broker.consumer import Consumer, Handler
from mailmerger_shared.broker.publisher import Publisher
from mailmerger_shared.db import create_engine, create_sessionmaker, ping
from mailmerger_shared.outbox import OutboxRelay
from mailmerger_shared.settings import BrokerSettings, DatabaseSettings, RedisSettings
from mailmerger_shared.web.auth import EndedSessions

log = logging.getLogger(__name__)


@dataclass
class Infrastructure:
    """What a service process holds open: any of database, Redis and broker."""

    name: str
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    redis: aioredis.Redis | None = None
    amqp: AbstractRobustConnection | None = None
    publisher: Publisher | None = None
    readiness: dict[str, Callable[[], Awaitable[object]]] = field(default_factory=dict)

    @contextlib.contextmanager
    def consuming(self, consumer: Consumer) -> Iterator[None]:
        """While the block runs, readiness also asks whether ``consumer`` is registered at the broker."""
        check = f"consumer {consumer.queue_name}"
        self.readiness[check] = lambda: _consuming(consumer)
        try:
            yield
        finally:
            self.readiness.pop(check, None)


async def _broker_alive(connection: AbstractRobustConnection) -> None:
    if connection.is_closed:
        raise ConnectionError("broker connection is closed (reconnecting)")


async def _consuming(consumer: Consumer) -> None:
    # A connection can be open while its consumer is not restored yet: /ready says so.
    if not await consumer.consuming():
        raise ConnectionError("not registered at the broker (restoring after a reconnect?)")


@contextlib.asynccontextmanager
async def open_infrastructure(
    name: str,
    *,
    database: DatabaseSettings | None = None,
    redis: RedisSettings | None = None,
    broker: BrokerSettings | None = None,
) -> AsyncIterator[Infrastructure]:
    infra = Infrastructure(name=name)
    async with contextlib.AsyncExitStack() as stack:
        if database is not None:
            engine = create_engine(database, application_name=f"mailmerger-{name}")
            stack.push_async_callback(_closing, "database", engine.dispose)
            infra.engine, infra.sessions = engine, create_sessionmaker(engine)
            infra.readiness["database"] = lambda: ping(engine)
        if redis is not None:
            client = aioredis.Redis.from_url(redis.url, socket_timeout=5, socket_connect_timeout=2)
            stack.push_async_callback(_closing, "redis", client.aclose)
            infra.redis = client
            infra.readiness["redis"] = client.ping
        if broker is not None:
            connection = await connect_broker(broker, name)
            stack.push_async_callback(_closing, "broker", connection.close)
            infra.amqp = connection
            infra.publisher = await Publisher.open(
                connection, timeout=broker.publish_timeout, bundle_size=broker.bundle_size
            )
            infra.readiness["broker"] = lambda: _broker_alive(connection)
        yield infra


async def connect_broker(broker: BrokerSettings, name: str) -> AbstractRobustConnection:
    """Connect to the broker, waiting for it if it is not up yet.

    ``connect_robust`` reconnects a connection it once had, but the first connect fails at once; a
    process started together with the broker (compose, a node reboot) would exit and count as a
    crash. It waits ``startup_wait_seconds`` with pauses of 1, 2, 4… 30 s, then raises.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + broker.startup_wait_seconds
    pause = 1.0
    while True:
        try:
            return await aio_pika.connect_robust(
                broker.url,
                client_properties={"connection_name": f"mailmerger-{name}"},
                reconnect_interval=broker.reconnect_seconds,
            )
        except ConnectionError as exc:  # aiormq's AMQPConnectionError is one
            wait = min(pause, deadline - loop.time())
            if wait <= 0:
                raise
            log.warning(
                "broker not reachable yet; waiting", extra={"retry_in_s": round(wait, 1), "error": str(exc)}
            )
            await asyncio.sleep(wait)
            pause = min(pause * 2, 30.0)


async def _closing(what: str, close: Callable[[], Awaitable[object]]) -> None:
    try:
        await close()
    except Exception:
        log.exception("failed to close %s; continuing shutdown", what)


def infrastructure_lifespan(
    name: str,
    *,
    database: DatabaseSettings | None = None,
    redis: RedisSettings | None = None,
    broker: BrokerSettings | None = None,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """A Litestar lifespan that opens the infrastructure into ``app.state.infra``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with open_infrastructure(name, database=database, redis=redis, broker=broker) as infra:
            app.state.infra = infra
            app.state.readiness = infra.readiness
            if infra.redis is not None and redis is not None:
                app.state.ended_sessions = EndedSessions(infra.redis, key_prefix=redis.key_prefix)
            yield

    return lifespan


def consumer_lifespan(
    queue_name: str, handler: Callable[[Infrastructure], Handler], broker: BrokerSettings
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """Consume ``queue_name`` for the app's lifetime; ``handler`` is built from the open infra.

    Must come after ``infrastructure_lifespan`` in the app's lifespan list.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        infra: Infrastructure = app.state.infra
        assert infra.amqp is not None, f"{queue_name}: consuming needs the broker"
        consumer = Consumer(
            queue_name,
            handler(infra),
            prefetch=broker.prefetch,
            delivery_limit=broker.delivery_limit,
            concurrency=broker.concurrency,
        )
        await consumer.start(infra.amqp, wait=broker.startup_wait_seconds)
        try:
            with infra.consuming(consumer):
                yield
        finally:
            await consumer.stop()

    return lifespan


def outbox_lifespan(table: Table) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """Relay the service's outbox for the app's lifetime (as ``app.state.outbox``, to ``wake()``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        infra: Infrastructure = app.state.infra
        assert infra.sessions is not None, "the outbox needs the database"
        assert infra.publisher is not None, "the outbox needs the broker"
        relay = OutboxRelay(infra.sessions, table, infra.publisher)
        app.state.outbox = relay
        task = asyncio.create_task(relay.run(), name=f"{infra.name}-outbox-relay")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifespan
