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

from mailmerger_queue.models import campaigns, messages, senders, suppressions
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


CAPPED_CAMPAIGNS = 6
TO_ONE_DOMAIN = 40  # per campaign, all at bigcorp.example
TO_OTHERS = 10  # per campaign, each at a domain of its own
DOMAIN_CAP = 5


async def write_capped_campaigns(database_url: str) -> None:
    """CAPPED_CAMPAIGNS running campaigns (one account each) with a domain cap of DOMAIN_CAP a
    day; each has TO_ONE_DOMAIN messages to one domain and TO_OTHERS to distinct ones, and its user
    suppressed one of the distinct addresses and the domain of another."""
    engine = create_engine(DatabaseSettings(url=database_url), application_name="replicas-test")
    now = datetime.now(UTC)
    accounts = range(101, 101 + CAPPED_CAMPAIGNS)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(senders),
                [
                    {
                        "account_id": account, "user_id": account, "email": f"c{account}@gmail.com",
                        "scopes": [], "state": "connected", "daily_limit": 100_000,
                        "per_minute_limit": 100_000, "connected_at": now, "state_changed_at": now,
                    }
                    for account in accounts
                ],
            )  # fmt: skip
            created = await connection.execute(
                insert(campaigns).returning(campaigns.c.id, campaigns.c.account_id),
                [
                    {
                        "user_id": account, "account_id": account, "name": "capped", "template_id": 1,
                        "template_version": 1, "state": "running", "address_column": "email",
                        "attachment_ids": [], "timezone": "UTC", "weekdays": [1, 2, 3, 4, 5, 6, 7],
                        "spacing_seconds": 0, "jitter_seconds": 0, "created_at": now, "launched_at": now,
                        "domain_daily_cap": DOMAIN_CAP,
                    }
                    for account in accounts
                ],
            )  # fmt: skip
            rows = []
            for campaign_id, account in created:
                addresses = [f"p{i}@bigcorp.example" for i in range(TO_ONE_DOMAIN)]
                addresses += [f"x@d{i}.example" for i in range(TO_OTHERS)]
                rows += [
                    {
                        "user_id": account, "account_id": account, "campaign_id": campaign_id,
                        "state": "scheduled", "send_at": now - timedelta(seconds=i % 30), "attempt": 0,
                        "rfc_message_id": f"<c{campaign_id}-{i}@replicas.test>", "to_addrs": [address],
                        "cc_addrs": [], "bcc_addrs": [], "subject": "s", "html": "<p>h</p>",
                        "attachment_ids": [], "created_at": now, "updated_at": now,
                    }
                    for i, address in enumerate(addresses)
                ]  # fmt: skip
            await connection.execute(insert(messages), rows)
            await connection.execute(
                insert(suppressions),
                [
                    {"user_id": account, "kind": kind, "value": value, "reason": "manual", "created_at": now}
                    for account in accounts
                    for kind, value in (("address", "x@d0.example"), ("domain", "d1.example"))
                ],
            )
    finally:
        await engine.dispose()


async def test_domain_caps_and_suppressions_hold_under_three_dispatcher_processes(
    service_env: dict[str, str], replicas_database: str, replicas_amqp_url: str
) -> None:
    """Three dispatchers together send no campaign more than its daily cap to one domain, and
    nothing to a suppressed address or domain; the rest of the capped domain waits for tomorrow."""
    await write_capped_campaigns(replicas_database)
    env = {
        **service_env,
        "MM_DB_URL": replicas_database,
        "MM_AMQP_URL": replicas_amqp_url,
        "MM_LOG_LEVEL": "WARNING",
        "MM_DISPATCH_TICK_SECONDS": "0.05",
        "MM_DISPATCH_BATCH_SIZE": "7",  # small batches: the three take turns on every campaign
        "MM_DISPATCH_PER_MINUTE_LIMIT": "100000",
    }
    expected_each = DOMAIN_CAP + TO_OTHERS - 2
    processes = [start_dispatcher(env) for _ in range(REPLICAS)]
    engine = create_engine(DatabaseSettings(url=replicas_database), application_name="replicas-test")
    try:

        async def settled() -> bool:
            assert all(p.poll() is None for p in processes), "a dispatcher exited"
            async with engine.connect() as connection:
                due = await connection.scalar(
                    text("SELECT count(*) FROM queue.messages WHERE state = 'scheduled' AND send_at <= now()")
                )
            return due == 0

        await eventually(settled, timeout=60, interval=0.2)
        async with engine.connect() as connection:
            by_state = dict(
                (
                    await connection.execute(
                        text(
                            "SELECT m.state || ':' || split_part(m.to_addrs[1], '@', 2), count(*) "
                            "FROM queue.messages m WHERE m.campaign_id IS NOT NULL GROUP BY 1"
                        )
                    )
                ).all()
            )
    finally:
        await engine.dispose()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        errors = [process.communicate(timeout=30)[1].decode() for process in processes]
    published = await published_commands(replicas_amqp_url)
    per_domain = Counter(
        (command_campaign, domain)
        for command_campaign, domain in await _capped_commands(replicas_database, published)
    )
    assert all(
        count <= DOMAIN_CAP for (_, domain), count in per_domain.items() if domain == "bigcorp.example"
    )
    assert sum(published.values()) == len(published) == CAPPED_CAMPAIGNS * expected_each
    assert by_state["dispatched:bigcorp.example"] == CAPPED_CAMPAIGNS * DOMAIN_CAP
    assert by_state["scheduled:bigcorp.example"] == CAPPED_CAMPAIGNS * (TO_ONE_DOMAIN - DOMAIN_CAP)
    assert by_state["cancelled:d0.example"] == by_state["cancelled:d1.example"] == CAPPED_CAMPAIGNS
    assert all(process.returncode == 0 for process in processes), errors


async def _capped_commands(database_url: str, published: Counter[int]) -> list[tuple[int, str]]:
    """(campaign, recipient domain) of each published message."""
    engine = create_engine(DatabaseSettings(url=database_url), application_name="replicas-test")
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT campaign_id, split_part(to_addrs[1], '@', 2) FROM queue.messages "
                    "WHERE id = ANY(CAST(:ids AS bigint[]))"
                ),
                {"ids": list(published)},
            )
            return [(campaign_id, domain) for campaign_id, domain in rows]
    finally:
        await engine.dispose()
