"""Sender workers on the real broker: many replicas on one queue, exactly once, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable

import httpx
import msgspec
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_sender.models import deliveries
from mailmerger_sender.settings import SenderSettings, WatcherSettings
from mailmerger_sender.worker import QUEUE, run_sender
from mailmerger_shared import contracts as c
from mailmerger_shared.broker import Publisher, messages_of
from mailmerger_shared.broker.topology import EVENTS_EXCHANGE
from mailmerger_shared.db import transaction
from mailmerger_shared.settings import load_service
from tests.sender.support import METADATA, SEND, Account, FakeAuth, MemoryBlobs, next_id, send_email
from tests.support import connection_with_a_fresh_queue, eventually

OUTCOMES = (
    c.EmailSent,
    c.EmailFailed,
    c.EmailDeferred,
    c.EmailUnconfirmed,
    c.SenderThrottled,
    c.GmailReconnectRequired,
)


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    conn = await connection_with_a_fresh_queue(amqp_url, QUEUE, delivery_limit=5)
    yield conn
    await conn.close()


class Outcomes:
    """Every outcome event the workers publish, read from a test queue on the events exchange."""

    def __init__(self) -> None:
        self.events: list[c.Message] = []

    @contextlib.asynccontextmanager
    async def listening(self, connection: AbstractRobustConnection) -> AsyncIterator[Outcomes]:
        channel = await connection.channel()
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)
        queue = await channel.declare_queue(f"test-outcomes-{uuid.uuid4().hex[:8]}", exclusive=True)
        for kind in OUTCOMES:
            await queue.bind(exchange, routing_key=kind.TAG)

        async def on_message(message: AbstractIncomingMessage) -> None:
            self.events.extend(event for event, _ in messages_of(message))
            await message.ack()

        await queue.consume(on_message)
        try:
            yield self
        finally:
            await channel.close()

    def sent(self, message_ids: set[int]) -> set[int]:
        return {
            e.message_id for e in self.events if isinstance(e, c.EmailSent) and e.message_id in message_ids
        }


@pytest.fixture
def sender_settings(service_env: dict[str, str], emulator_url: str) -> SenderSettings:
    return load_service(
        SenderSettings,
        {
            **service_env,
            "MM_GMAIL_API_URL": emulator_url,
            "MM_SENDER_ACCOUNT_SENDS_PER_MINUTE": "1000000",
            "MM_SENDER_SHUTDOWN_GRACE_SECONDS": "10",
        },
    )


@pytest.fixture
async def workers(
    sender_settings: SenderSettings, fake_auth: FakeAuth
) -> AsyncIterator[Callable[[], asyncio.Task[None]]]:
    """Start sender workers as tasks; each is stopped (cancelled, i.e. shut down) after the test."""
    started: list[asyncio.Task[None]] = []
    blobs = MemoryBlobs()

    def start() -> asyncio.Task[None]:
        task = asyncio.create_task(
            run_sender(sender_settings, auth_transport=fake_auth.transport(), blobs=blobs)
        )
        started.append(task)
        return task

    yield start
    for task in started:
        await stop(task)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _accounts(fake_auth: FakeAuth, count: int) -> list[Account]:
    accounts = []
    for _ in range(count):
        account_id = next_id()
        accounts.append(
            await fake_auth.register(
                Account(
                    account_id=account_id,
                    user_id=next_id(),
                    email=f"worker{account_id}@gmail.test",
                    scopes=("https://www.googleapis.com/auth/gmail.send",),
                )
            )
        )
    return accounts


async def _publish(connection: AbstractRobustConnection, commands: list[c.SendEmail]) -> None:
    publisher = await Publisher.open(connection)
    for start in range(0, len(commands), 250):
        await asyncio.gather(*(publisher.publish(command) for command in commands[start : start + 250]))
    await publisher.close()


async def _copies(emulator: httpx.AsyncClient, accounts: list[Account]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for account in accounts:
        answer = await emulator.get("/_emulator/messages/counts", params={"user": account.email})
        counts.update(answer.json()["counts"])
    return counts


async def test_three_workers_deliver_3000_messages_exactly_once(
    connection: AbstractRobustConnection,
    workers: Callable[[], asyncio.Task[None]],
    fake_auth: FakeAuth,
    emulator: httpx.AsyncClient,
) -> None:
    """Three replicas on one queue: every one of 3,000 messages reaches Gmail once, none is lost."""
    accounts = await _accounts(fake_auth, 6)
    commands = [send_email(accounts[n % len(accounts)]) for n in range(3000)]
    wanted = {command.message_id for command in commands}
    async with Outcomes().listening(connection) as outcomes:
        await _publish(connection, commands)
        for _ in range(3):
            workers()
        await eventually(lambda: outcomes.sent(wanted) == wanted, timeout=60, interval=0.5)
    copies = await _copies(emulator, accounts)
    assert sum(copies.values()) == 3000
    assert {command.rfc_message_id.strip("<>") for command in commands} == set(copies)
    assert set(copies.values()) == {1}


async def test_shutdown_finishes_in_flight_sends_and_leaves_the_rest_to_redelivery(
    connection: AbstractRobustConnection,
    workers: Callable[[], asyncio.Task[None]],
    fake_auth: FakeAuth,
    emulator: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A stopping worker completes the sends it started; another worker delivers the rest, once each."""
    [account] = await _accounts(fake_auth, 1)
    fault = {"kind": "latency", "user": account.email, "methods": ["messages.send"], "latency_ms": 150}
    (await emulator.post("/_emulator/faults", json=fault)).raise_for_status()
    commands = [send_email(account) for _ in range(200)]
    wanted = {command.message_id for command in commands}
    async with Outcomes().listening(connection) as outcomes:
        await _publish(connection, commands)
        first = workers()
        await eventually(lambda: outcomes.sent(wanted), timeout=20)
        await stop(first)

        async with transaction(sessions) as session:
            states = dict(
                (
                    await session.execute(
                        select(deliveries.c.state, func.count())
                        .where(deliveries.c.message_id.in_(wanted))
                        .group_by(deliveries.c.state)
                    )
                ).all()
            )
        assert "sending" not in states  # nothing was abandoned mid-call
        assert 0 < states.get("sent", 0) < len(commands)
        await emulator.delete("/_emulator/faults")
        workers()
        await eventually(lambda: outcomes.sent(wanted) == wanted, timeout=30, interval=0.2)
    copies = await _copies(emulator, [account])
    assert sum(copies.values()) == len(commands)
    assert set(copies.values()) == {1}


async def test_the_worker_watches_mailboxes_and_publishes_what_comes_back(
    connection: AbstractRobustConnection,
    sender_settings: SenderSettings,
    fake_auth: FakeAuth,
) -> None:
    """A worker's watcher finds the emulator's reply and bounce and the relay publishes them."""
    account = await fake_auth.register(
        Account(
            account_id=next_id(),
            user_id=next_id(),
            email=f"watched{next_id()}@gmail.test",
            scopes=(SEND, METADATA),
        )
    )
    replied, bounced = (
        send_email(account, to=["ann@replies.example.com"]),
        send_email(account, to=["nobody@bounces.example.com"]),
    )
    settings = msgspec.structs.replace(sender_settings, watcher=WatcherSettings(poll_seconds=1))
    found: list[c.ResponseReceived] = []
    channel = await connection.channel()
    exchange = await channel.get_exchange(EVENTS_EXCHANGE)
    queue = await channel.declare_queue(f"test-responses-{uuid.uuid4().hex[:8]}", exclusive=True)
    # Every event: the outbox also holds what other tests of the run staged, and a row nothing is
    # bound for (NO_ROUTE) is put back at the head of the outbox, ahead of ours.
    await queue.bind(exchange, routing_key="#")

    async def on_message(message: AbstractIncomingMessage) -> None:
        found.extend(
            e
            for e, _ in messages_of(message)
            if isinstance(e, c.ResponseReceived) and e.account_id == account.account_id
        )
        await message.ack()

    await queue.consume(on_message)
    worker = asyncio.create_task(
        run_sender(settings, auth_transport=fake_auth.transport(), blobs=MemoryBlobs())
    )
    try:
        await _publish(connection, [replied, bounced])
        # The emulator answers mail to replies.example.com and bounces.example.com a few seconds
        # after it is sent.
        await eventually(lambda: len({e.message_id for e in found}) == 2, timeout=20, interval=0.1)
    finally:
        await stop(worker)
        await channel.close()
    kinds = {e.message_id: e.kind for e in found}
    assert kinds == {replied.message_id: "reply", bounced.message_id: "bounce"}
