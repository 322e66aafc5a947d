"""Chaos: a large batch of emails over many accounts while senders, the broker and the database fail.

The tests share one world (tests/fault/conftest.py) and run in file order: the checked batch, the
recovery probes, the poison message, and last the run with reconciliation off that must duplicate.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx
import pytest
from sqlalchemy import text

from mailmerger_shared import contracts as c
from mailmerger_shared.settings import BrokerSettings
from tests.fault.checker import Row, Verdict, check
from tests.fault.conftest import World, scalar
from tests.support import eventually

pytestmark = pytest.mark.fault

EMAILS = 10_000
RECONCILE_OFF_EMAILS = 300
DELIVERY_LIMIT = BrokerSettings().delivery_limit
SEND = ["messages.send"]
PENDING_SQL = "SELECT count(*) FROM queue.messages WHERE id > :after AND state IN ('scheduled', 'dispatched')"
TERMINAL_SQL = PENDING_SQL.replace(" IN ", " NOT IN ")


async def compose(world: World, count: int, tag: str) -> None:
    """``count`` emails through the queue API, spread over every account, 16 requests at a time."""
    gate = asyncio.Semaphore(16)
    accounts = sorted(world.accounts)
    async with httpx.AsyncClient(base_url=world.api_url, timeout=30) as client:

        async def one(index: int) -> None:
            account = accounts[index % len(accounts)]
            body = {
                "account_id": account,
                "to": [f"r{index}@example.org"],
                "subject": f"{tag} {index}",
                "html": f"<p>Hello {index}, from {tag}</p>",
            }
            async with gate:
                answer = await client.post(
                    "/v1/emails/", json=body, headers=world.signer.bearer(world.accounts[account][0])
                )
            assert answer.status_code == 201, answer.text

        await asyncio.gather(*(one(index) for index in range(count)))


async def ledger(world: World, after_id: int = 0) -> list[Row]:
    assert world.engine is not None
    async with world.engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT rfc_message_id, state, gmail_id, outcome_reason FROM queue.messages WHERE id > :after"
            ),
            {"after": after_id},
        )
        return [Row(*row) for row in rows]


async def copies(world: World) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=world.emulator_url, timeout=30) as client:
        answer = await client.get("/_emulator/messages/counts")
        answer.raise_for_status()
        counts: dict[str, int] = answer.json()["counts"]
        return counts


async def faults(world: World, *rules: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=world.emulator_url, timeout=10) as client:
        if not rules:
            (await client.delete("/_emulator/faults")).raise_for_status()
            return
        answer = await client.post("/_emulator/faults", json=list(rules))
        assert answer.status_code == 201, answer.text


async def last_id(world: World) -> int:
    return int(await scalar(world, "SELECT coalesce(max(id), 0) FROM queue.messages"))


async def quiescent(world: World, after_id: int, timeout: float) -> bool:
    """Whether every message of the batch reached a terminal state within ``timeout``."""

    async def settled() -> bool:
        try:
            pending = await scalar(
                world,
                PENDING_SQL,
                after=after_id,
            )
        except Exception:  # the database may be restarting
            return False
        return int(pending) == 0

    try:
        await eventually(settled, timeout=timeout, interval=0.5)
    except AssertionError:
        return False  # the checker's verdict names the stuck messages
    return True


async def judged(world: World, after_id: int) -> Verdict:
    return check(await ledger(world, after_id), await ledger(world), await copies(world))


async def states(world: World, after_id: int) -> dict[str, int]:
    """Messages of the batch by state (for failure messages)."""
    assert world.engine is not None
    async with world.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT state, count(*) FROM queue.messages WHERE id > :after GROUP BY state"),
            {"after": after_id},
        )
        return {state: int(n) for state, n in rows}


class Progress:
    """Waits for the batch to move on between two faults (instead of sleeping)."""

    def __init__(self, world: World, after_id: int) -> None:
        self.world = world
        self.after_id = after_id
        self.mark = 0

    async def terminal(self) -> int:
        try:
            return int(
                await scalar(
                    self.world,
                    TERMINAL_SQL,
                    after=self.after_id,
                )
            )
        except Exception:
            return -1

    async def advance(self, step: int, total: int) -> None:
        target = min(self.mark + step, total)

        async def moved() -> bool:
            done = await self.terminal()
            return done >= target

        try:
            await eventually(moved, timeout=120, interval=0.3)
        except AssertionError:
            raise AssertionError(f"stalled at {await states(self.world, self.after_id)}") from None
        self.mark = await self.terminal()


def kill_and_restart_sender(world: World, index: int) -> None:
    world.senders[index].kill()
    world.senders[index] = world.start_sender(index)


@pytest.mark.timeout(600)
async def test_batch_under_chaos_loses_duplicates_and_invents_nothing(world: World) -> None:
    """Killed senders, broker/database restarts, dropped links, Gmail faults: 0 lost/duplicated/unexpected."""
    after = await last_id(world)
    started = time.monotonic()
    await faults(
        world,
        {"kind": "error", "methods": SEND, "rate": 0.03, "status": 500, "reason": "backendError"},
        {"kind": "error", "methods": SEND, "rate": 0.02, "status": 503, "reason": "backendError"},
        {"kind": "drop_connection", "methods": SEND, "rate": 0.02},
    )
    burst = {"kind": "error", "methods": SEND, "count": 60, "status": 429, "reason": "rateLimitExceeded"}
    progress = Progress(world, after)
    composing = asyncio.create_task(compose(world, EMAILS, "chaos"))
    try:
        step = EMAILS // 12
        await progress.advance(step, EMAILS)
        kill_and_restart_sender(world, 0)
        await faults(world, burst)
        await progress.advance(step, EMAILS)
        kill_and_restart_sender(world, 1)
        await progress.advance(step, EMAILS)
        await composing
        world.rabbit.restart()
        await progress.advance(step, EMAILS)
        world.rabbit.ctl("close_all_connections", "chaos test")
        kill_and_restart_sender(world, 2)
        await progress.advance(step, EMAILS)
        world.postgres.restart_immediate()
        await faults(world, burst)
        await progress.advance(step, EMAILS)
        # A sender started while the broker comes back up: it waits for it, and the drop below may
        # hit it mid start-up (it starts consuming again).
        world.senders[0].kill()
        world.rabbit.restart()
        world.senders[0] = world.start_sender(0)
        await progress.advance(step, EMAILS)
        await consumers_back(world)  # the drop below is for running processes, not a start-up race
        world.rabbit.ctl("close_all_connections", "chaos test")
    finally:
        if not composing.done():
            composing.cancel()
        await faults(world)
    settled = await quiescent(world, after, timeout=120)
    verdict = await judged(world, after)
    elapsed = time.monotonic() - started
    print(f"\nchaos: {EMAILS} emails, {elapsed:.0f}s, settled={settled}, {verdict.summary()}")
    assert verdict.total == EMAILS
    assert verdict.valid, verdict.summary() + "\n" + world.logs_text()


async def consumers_back(world: World, *, timeout: float = 30) -> dict[str, int]:
    """Wait until every sender and the queue's outcome consumer consume; the counts seen."""
    seen: dict[str, int] = {}

    def consuming() -> bool:
        try:
            seen.update(world.rabbit.consumers())
        except subprocess.SubprocessError:
            return False
        return seen.get("sender.send-email", 0) == len(world.senders) and (
            seen.get("queue.delivery-outcomes", 0) >= 1
        )

    try:
        await eventually(consuming, timeout=timeout, interval=0.3)
    except AssertionError:
        raise AssertionError(f"consumers after {timeout:.0f} s: {seen}\n{world.logs_text()}") from None
    return seen


async def test_consumers_are_back_within_10_seconds_of_a_broker_restart(world: World) -> None:
    """After the private broker restarts, the senders and the queue consume again within 10 s."""
    await consumers_back(
        world, timeout=60
    )  # what the test before left has settled (a stalled sender restarts)
    world.rabbit.restart()
    await consumers_back(world, timeout=10)


async def test_database_outage_answers_503_naming_the_database(world: World) -> None:
    """With PostgreSQL down the API answers 503 (never 500) and /ready names the database."""
    headers = world.signer.bearer(1)
    world.postgres.stop("immediate")
    try:
        async with httpx.AsyncClient(base_url=world.api_url, timeout=30) as client:
            listed = await client.get("/v1/emails/", headers=headers)
            ready = await client.get("/ready")
    finally:
        world.postgres.start()
    assert listed.status_code == 503, listed.text
    assert ready.status_code == 503, ready.text
    assert ready.json()["checks"]["database"] != "ok", ready.text

    async def recovered() -> bool:
        async with httpx.AsyncClient(base_url=world.api_url, timeout=5) as client:
            return (await client.get("/v1/emails/", headers=headers)).status_code == 200

    await eventually(recovered, timeout=20, interval=0.3)


async def test_poison_message_is_dead_lettered_after_exactly_the_delivery_limit(world: World) -> None:
    """A command no sender can handle is delivered exactly the delivery limit times, then dead-lettered."""
    poison = c.UserDeleted(user_id=424242)
    envelope_id = str(uuid.uuid4())
    connection = await aio_pika.connect(world.rabbit.url)
    try:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(
                c.encode(poison),
                type=poison.TAG,
                message_id=envelope_id,
                timestamp=datetime.now(UTC),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key="sender.send-email",
        )
        dead = await channel.get_queue("sender.send-email.dead-letter", ensure=False)

        async def dead_lettered() -> aio_pika.abc.AbstractIncomingMessage | None:
            found = await dead.get(fail=False, no_ack=True)
            return found if found is not None and found.message_id == envelope_id else None

        await eventually(dead_lettered, timeout=30, interval=0.3)
    finally:
        await connection.close()

    def attempts() -> int:
        return sum(
            1
            for path in world.logs.glob("sender*.log")
            for line in path.read_text(errors="replace").splitlines()
            if envelope_id in line and "handler failed" in line
        )

    assert attempts() == DELIVERY_LIMIT


@pytest.mark.timeout(300)
async def test_without_reconciliation_dropped_connections_show_up_as_duplicates(world: World) -> None:
    """With MM_SENDER_RECONCILE=false, accepted-then-dropped sends are resent: the checker sees duplicates."""
    world.restart_senders(MM_SENDER_RECONCILE="false")
    after = await last_id(world)
    try:
        await faults(world, {"kind": "drop_connection", "methods": SEND, "rate": 0.2})
        await compose(world, RECONCILE_OFF_EMAILS, "blind")
        assert await quiescent(world, after, timeout=120), await states(world, after)
    finally:
        await faults(world)
        world.restart_senders()
    verdict = await judged(world, after)
    print(f"\nreconcile off: {verdict.summary()}")
    assert len(verdict.duplicated) > 0
