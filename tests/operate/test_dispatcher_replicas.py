"""Dispatcher replicas scale out: three separate processes over one backlog publish each message once."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest
from sqlalchemy import insert, text

from mailmerger_queue.models import messages, senders
from mailmerger_shared import contracts as c
from mailmerger_shared.broker import messages_of
from mailmerger_shared.broker.topology import QUEUES, declare_queue
from mailmerger_shared.db import create_engine
from mailmerger_shared.settings import BrokerSettings, DatabaseSettings
from tests.operate.conftest import private_database, private_vhost
from tests.support import eventually, start_worker_process

ACCOUNTS = 8
PER_ACCOUNT = 150
REPLICAS = 3


@pytest.fixture(scope="module")
def replicas_amqp_url() -> Iterator[str]:
    yield from private_vhost("replicas")


@pytest.fixture(scope="module")
async def replicas_database() -> AsyncIterator[str]:
    async for url in private_database("replicas"):
        yield url


async def write_backlog(database_url: str) -> set[int]:
    """ACCOUNTS connected accounts, each with PER_ACCOUNT due messages; the message ids."""
    engine = create_engine(DatabaseSettings(url=database_url), application_name="replicas-test")
    now = datetime.now(UTC)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(senders),
                [
                    {
                        "account_id": account, "user_id": account, "email": f"a{account}@gmail.com",
                        "scopes": [], "state": "connected", "daily_limit": 100_000,
                        "per_minute_limit": 100_000, "connected_at": now, "state_changed_at": now,
                    }
                    for account in range(1, ACCOUNTS + 1)
                ],
            )  # fmt: skip
            rows = [
                {
                    "user_id": account, "account_id": account, "state": "scheduled",
                    "send_at": now - timedelta(seconds=i % 60), "attempt": 0,
                    "rfc_message_id": f"<r{account}-{i}@replicas.test>", "to_addrs": [f"to{i}@example.org"],
                    "cc_addrs": [], "bcc_addrs": [], "subject": "s", "html": "<p>h</p>", "attachment_ids": [],
                    "created_at": now, "updated_at": now,
                }
                for account in range(1, ACCOUNTS + 1)
                for i in range(PER_ACCOUNT)
            ]  # fmt: skip
            result = await connection.execute(insert(messages).returning(messages.c.id), rows)
            return {row.id for row in result}
    finally:
        await engine.dispose()


async def scheduled_left(database_url: str) -> int:
    engine = create_engine(DatabaseSettings(url=database_url), application_name="replicas-test")
    try:
        async with engine.connect() as connection:
            return int(
                (
                    await connection.execute(
                        text("SELECT count(*) FROM queue.messages WHERE state = 'scheduled'")
                    )
                ).scalar_one()
            )
    finally:
        await engine.dispose()


async def published_commands(amqp_url: str) -> Counter[int]:
    """Every SendEmail in the sender's queue, by message id (drained)."""
    connection = await aio_pika.connect(amqp_url)
    seen: Counter[int] = Counter()
    try:
        channel = await connection.channel()
        queue = await declare_queue(
            channel, QUEUES["sender.send-email"], delivery_limit=BrokerSettings().delivery_limit
        )
        while (incoming := await queue.get(fail=False, no_ack=True)) is not None:
            for command, _ in messages_of(incoming):
                assert isinstance(command, c.SendEmail)
                seen[command.message_id] += 1
    finally:
        await connection.close()
    return seen


def start_dispatcher(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return start_worker_process("mailmerger_queue", "dispatcher", env)


async def test_three_dispatcher_processes_publish_every_message_exactly_once(
    service_env: dict[str, str], replicas_database: str, replicas_amqp_url: str
) -> None:
    """1,200 due messages on 8 accounts, 3 dispatcher processes: each message is published once."""
    ids = await write_backlog(replicas_database)
    env = {
        **service_env,
        "MM_DB_URL": replicas_database,
        "MM_AMQP_URL": replicas_amqp_url,
        "MM_LOG_LEVEL": "WARNING",
        "MM_DISPATCH_TICK_SECONDS": "0.05",
        "MM_DISPATCH_BATCH_SIZE": "60",
        "MM_DISPATCH_PER_MINUTE_LIMIT": "100000",  # the accounts' own limit: pacing does not slow this
    }
    processes = [start_dispatcher(env) for _ in range(REPLICAS)]
    try:

        async def drained() -> bool:
            assert all(p.poll() is None for p in processes), "a dispatcher exited"
            return await scheduled_left(replicas_database) == 0

        await eventually(drained, timeout=60, interval=0.2)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        errors = [process.communicate(timeout=30)[1].decode() for process in processes]
    published = await published_commands(replicas_amqp_url)
    assert set(published) == ids
    assert set(published.values()) == {1}
    assert all(process.returncode == 0 for process in processes), errors
