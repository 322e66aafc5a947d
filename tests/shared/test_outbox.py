"""The transactional outbox: an event exists exactly when its business change was committed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailmerger_shared import contracts as c
from mailmerger_shared.broker import Publisher, messages_of
from mailmerger_shared.broker.topology import QUEUES, declare_queue
from mailmerger_shared.context import set_correlation_id
from mailmerger_shared.db import create_engine, create_sessionmaker, transaction
from mailmerger_shared.outbox import OutboxRelay, stage
from mailmerger_shared.settings import BrokerSettings, DatabaseSettings
from mailmerger_storage.models import outbox  # any service's outbox table will do


@pytest.fixture
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(
        DatabaseSettings(url=migrated_database, pool_size=2), application_name="test-outbox"
    )
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    sessions = create_sessionmaker(engine)
    async with transaction(sessions) as session:
        await session.execute(outbox.delete())
    return sessions


async def _unroute(channel: AbstractChannel, event: type[c.Event]) -> None:
    """Delete every queue that takes ``event``: publishing it then fails with no route."""
    for spec in QUEUES.values():
        if event in spec.messages:
            await channel.queue_delete(spec.name)


async def _pending(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with transaction(sessions) as session:
        return int((await session.execute(select(func.count()).select_from(outbox))).scalar_one())


async def test_rolled_back_transaction_leaves_no_event(sessions: async_sessionmaker[AsyncSession]) -> None:
    """An event staged in a transaction that fails is never published."""

    async def failing_unit_of_work() -> None:
        async with transaction(sessions) as session:
            await stage(session, outbox, c.UserDeleted(user_id=1))
            raise RuntimeError("business rule failed")

    with pytest.raises(RuntimeError):
        await failing_unit_of_work()
    assert await _pending(sessions) == 0


async def test_relay_publishes_committed_events_and_deletes_them(
    sessions: async_sessionmaker[AsyncSession], amqp_url: str
) -> None:
    """Committed rows are published with their envelope id, in order (one bundle), then deleted."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        spec = QUEUES["storage.user-deleted"]
        await channel.queue_delete(spec.name)
        queue = await declare_queue(channel, spec, delivery_limit=BrokerSettings().delivery_limit)
        async with transaction(sessions) as session:
            envelopes = [await stage(session, outbox, c.UserDeleted(user_id=n)) for n in range(5)]
        relay = OutboxRelay(sessions, outbox, await Publisher.open(connection))

        assert await relay.publish_pending() == 5
        assert await relay.publish_pending() == 0
        assert await _pending(sessions) == 0
        message = await queue.get(timeout=5)
        await message.ack()
        received = messages_of(message)
        assert [envelope.id for _, envelope in received] == [e.id for e in envelopes]
        assert [event for event, _ in received] == [c.UserDeleted(user_id=n) for n in range(5)]
    finally:
        await connection.close()


async def test_staged_event_carries_the_requests_correlation_id(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The correlation id of the HTTP request that staged an event travels in its envelope."""
    set_correlation_id("req-outbox-1")
    try:
        async with transaction(sessions) as session:
            envelope = await stage(session, outbox, c.UserDeleted(user_id=3))
    finally:
        set_correlation_id(None)
    assert envelope.correlation_id == "req-outbox-1"
    async with transaction(sessions) as session:
        stored = (
            await session.execute(select(outbox.c.correlation_id).where(outbox.c.id == envelope.id))
        ).scalar()
    assert stored == "req-outbox-1"


async def test_unpublishable_event_stays_pending(
    sessions: async_sessionmaker[AsyncSession], amqp_url: str
) -> None:
    """When publishing fails (no route), the rows stay pending for the next pass."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        await _unroute(channel, c.AttachmentDeleted)
        async with transaction(sessions) as session:
            await stage(session, outbox, c.AttachmentDeleted(user_id=1, attachment_id=1))
        relay = OutboxRelay(sessions, outbox, await Publisher.open(connection))
        with pytest.raises(Exception, match="no queue is bound"):
            await relay.publish_pending()
        assert await _pending(sessions) == 1
    finally:
        await connection.close()


async def test_only_the_events_the_broker_did_not_take_stay_pending(
    sessions: async_sessionmaker[AsyncSession], amqp_url: str
) -> None:
    """A batch with a routable and an unroutable event: the first is published and gone, the
    second stays (with its envelope) for the next pass; the first is not published twice."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        await _unroute(channel, c.AttachmentDeleted)
        spec = QUEUES["storage.user-deleted"]
        await channel.queue_delete(spec.name)
        queue = await declare_queue(channel, spec, delivery_limit=BrokerSettings().delivery_limit)
        async with transaction(sessions) as session:
            routed = await stage(session, outbox, c.UserDeleted(user_id=7))
            stuck = await stage(session, outbox, c.AttachmentDeleted(user_id=1, attachment_id=1))
        relay = OutboxRelay(sessions, outbox, await Publisher.open(connection))

        for _ in range(2):
            with pytest.raises(Exception, match="no queue is bound"):
                await relay.publish_pending()

        async with transaction(sessions) as session:
            left = (await session.execute(select(outbox.c.id, outbox.c.tag))).all()
        assert [(row.id, row.tag) for row in left] == [(stuck.id, stuck.tag)]
        message = await queue.get(timeout=5)
        await message.ack()
        assert [envelope.id for _, envelope in messages_of(message)] == [routed.id]
        assert await queue.get(fail=False) is None
    finally:
        await connection.close()
