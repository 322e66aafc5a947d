"""Outgoing webhooks: staging in the change's transaction, signed delivery, retries, SSRF, disabling."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import msgspec
import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from mailmerger_queue.models import messages, webhook_attempts, webhook_deliveries, webhook_endpoints
from mailmerger_queue.settings import ComplianceSettings, WebhookSettings
from mailmerger_queue.webhooks import domain
from mailmerger_queue.webhooks.courier import Courier, http_client
from mailmerger_queue.webhooks.endpoints import Webhooks
from mailmerger_queue.webhooks.events import stage_event, stage_message_events
from mailmerger_queue.webhooks.outcomes import Job, Outcome, record_outcomes
from mailmerger_queue.webhooks.schemas import CreateEndpoint, Delivery, DeliveryPage, Endpoint, UpdateEndpoint
from mailmerger_queue.webhooks.sealing import SecretBox
from mailmerger_shared.db import transaction
from mailmerger_shared.egress import RefusedTarget
from mailmerger_shared.errors import Conflict, Invalid, NotFound
from mailmerger_shared.runtime import Infrastructure
from tests.queue.world import FakeClock
from tests.support import eventually, free_port

COMPLIANCE = ComplianceSettings()
_users = itertools.count(700_000)
_messages = itertools.count(1)


def webhook_settings(**overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {
        "allowed_hosts": ["127.0.0.1"],
        "timeout_seconds": 2.0,
        "retry_schedule_seconds": [1.0, 1.0, 1.0],
        "concurrency": 64,
        "per_endpoint_concurrency": 16,
    }
    return WebhookSettings(**{**values, **overrides})


# --- a receiver: a small HTTP/1.1 server on 127.0.0.1 ------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Answers each POST with the next of ``answers`` (200 once they run out), keeping every request."""

    port: int = field(default_factory=free_port)
    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    def event_ids(self) -> list[str]:
        return [request.event_id for request in self.received]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.received.append(Received(headers=headers, body=body))
                status = self.answers.pop(0) if self.answers else 200
                answer = b"ok" if status < 400 else b"<html>\x00oops\r\n  server error</html>"
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-length: {len(answer)}\r\n\r\n".encode() + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


# --- the database -------------------------------------------------------------------------------


@pytest.fixture
def sessions(infra: Infrastructure) -> async_sessionmaker[AsyncSession]:
    """The queue's sessions (the suite empties the webhook tables before each test)."""
    assert infra.sessions is not None
    return infra.sessions


@pytest.fixture
def webhooks() -> Webhooks:
    return Webhooks(webhook_settings(), COMPLIANCE)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(webhook_settings()) as http:
        yield http


async def add_endpoint(
    sessions: async_sessionmaker[AsyncSession],
    webhooks: Webhooks,
    user_id: int,
    url: str,
    events: list[str] | None = None,
) -> tuple[int, str]:
    """An endpoint of ``user_id``: its id and its secret."""
    async with transaction(sessions) as session:
        created = await webhooks.create(
            session, user_id, CreateEndpoint(url=url, events=events or ["message.sent"])
        )
    return created.id, created.secret


async def add_messages(sessions: async_sessionmaker[AsyncSession], user_id: int, count: int) -> list[int]:
    """``count`` sent messages of ``user_id`` written straight into the ledger."""
    now = datetime.now(UTC)
    rows = []
    for _ in range(count):
        n = next(_messages)
        rows.append(
            {
                "user_id": user_id,
                "state": "sent",
                "send_at": now,
                "attempt": 1,
                "rfc_message_id": f"<wh-{n}-{user_id}-{now.timestamp()}@test>",
                "to_addrs": [f"r{n}@example.com"],
                "cc_addrs": [],
                "bcc_addrs": [],
                "subject": "Secret subject",
                "html": "<p>secret body</p>",
                "attachment_ids": [],
                "gmail_id": f"g{n}",
                "thread_id": f"t{n}",
                "sent_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
    async with transaction(sessions) as session:
        result = await session.execute(insert(messages).values(rows).returning(messages.c.id))
        return list(result.scalars())


async def deliveries(sessions: async_sessionmaker[AsyncSession], endpoint_id: int | None = None) -> list[Any]:
    async with transaction(sessions) as session:
        query = select(webhook_deliveries).order_by(webhook_deliveries.c.id)
        if endpoint_id is not None:
            query = query.where(webhook_deliveries.c.endpoint_id == endpoint_id)
        return list(await session.execute(query))


async def attempts_of(sessions: async_sessionmaker[AsyncSession], delivery_id: int) -> list[Any]:
    async with transaction(sessions) as session:
        query = select(webhook_attempts).where(webhook_attempts.c.delivery_id == delivery_id)
        return list(await session.execute(query.order_by(webhook_attempts.c.attempt)))


async def stage_sent(sessions: async_sessionmaker[AsyncSession], ids: list[int]) -> None:
    async with transaction(sessions) as session:
        await stage_message_events(session, "message.sent", ids, datetime.now(UTC))


def courier(
    sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient, clock: FakeClock, **settings: Any
) -> Courier:
    return Courier(sessions, webhook_settings(**settings), COMPLIANCE, client, clock=clock, idle_seconds=0.02)


# --- a user hooked to the receiver: what the delivery tests start from --------------------------


@dataclass
class Hooked:
    """A user with one endpoint, and the test's database, receiver, HTTP client and clock at hand
    to stage events for it and deliver them."""

    user: int
    endpoint: int
    secret: str
    sessions: async_sessionmaker[AsyncSession]
    webhooks: Webhooks
    receiver: Receiver
    client: httpx.AsyncClient
    clock: FakeClock

    async def send(self, count: int = 1) -> None:
        """``count`` new sent messages of the user, their message.sent events staged."""
        await stage_sent(self.sessions, await add_messages(self.sessions, self.user, count))

    def courier(self, **settings: Any) -> Courier:
        """A courier on the test's clock, with ``settings`` over the test's webhook settings."""
        return courier(self.sessions, self.client, self.clock, **settings)

    async def deliver(self, **settings: Any) -> int:
        """One round of a new courier with ``settings``: how many deliveries it attempted."""
        return await self.courier(**settings).deliver_due()

    async def deliveries(self) -> list[Any]:
        """The endpoint's delivery rows, oldest first."""
        return await deliveries(self.sessions, self.endpoint)

    async def attempts(self, delivery: Any) -> list[Any]:
        """The attempt rows of ``delivery``, in order."""
        return await attempts_of(self.sessions, delivery.id)

    async def force(self, **values: Any) -> None:
        """Set ``values`` on every delivery row, as a courier's claim would leave them."""
        async with transaction(self.sessions) as session:
            await session.execute(update(webhook_deliveries).values(**values))

    async def get(self) -> Endpoint:
        async with transaction(self.sessions) as session:
            return await self.webhooks.get(session, self.user, self.endpoint)

    async def update(self, change: UpdateEndpoint) -> Endpoint:
        async with transaction(self.sessions) as session:
            return await self.webhooks.update(session, self.user, self.endpoint, change)

    async def replay(self, delivery_id: int) -> Delivery:
        async with transaction(self.sessions) as session:
            return await self.webhooks.replay(session, self.user, self.endpoint, delivery_id)

    async def send_test(self) -> Delivery:
        async with transaction(self.sessions) as session:
            return await self.webhooks.send_test(session, self.user, self.endpoint)

    async def page(self, *, cursor: str | None, limit: int) -> DeliveryPage:
        async with transaction(self.sessions) as session:
            return await self.webhooks.deliveries(
                session, self.user, self.endpoint, cursor=cursor, limit=limit
            )


class Hook(Protocol):
    """Makes a :class:`Hooked`: a new user with an endpoint at ``url`` (the receiver's by default),
    subscribed to ``events`` (message.sent by default), registered by ``registry`` (the test's
    ``webhooks`` by default)."""

    async def __call__(
        self, *, url: str | None = None, events: list[str] | None = None, registry: Webhooks | None = None
    ) -> Hooked: ...


@pytest.fixture
def hook(
    sessions: async_sessionmaker[AsyncSession],
    webhooks: Webhooks,
    receiver: Receiver,
    client: httpx.AsyncClient,
    clock: FakeClock,
) -> Hook:
    async def make(
        *, url: str | None = None, events: list[str] | None = None, registry: Webhooks | None = None
    ) -> Hooked:
        user = next(_users)
        endpoint, secret = await add_endpoint(
            sessions, registry or webhooks, user, url or receiver.url, events
        )
        return Hooked(user, endpoint, secret, sessions, webhooks, receiver, client, clock)

    return make


@pytest.fixture
async def hooked(hook: Hook) -> Hooked:
    """A new user with an endpoint on the receiver, subscribed to message.sent."""
    return await hook()


@asynccontextmanager
async def running(*couriers: Courier) -> AsyncIterator[None]:
    """The couriers' loops, running until the block ends."""
    tasks = [asyncio.create_task(each.run()) for each in couriers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- staging ------------------------------------------------------------------------------------


async def test_staging_writes_one_delivery_per_event_and_subscribed_endpoint(
    sessions: async_sessionmaker[AsyncSession], webhooks: Webhooks
) -> None:
    """One set-based insert: a row per (message, subscribed endpoint), one event id per message, and
    nothing for a user without endpoints or an endpoint not subscribed to the type."""
    hooked, unhooked = next(_users), next(_users)
    first, _ = await add_endpoint(sessions, webhooks, hooked, "http://127.0.0.1:9/a", ["message.sent"])
    second, _ = await add_endpoint(
        sessions, webhooks, hooked, "http://127.0.0.1:9/b", ["message.failed", "message.sent"]
    )
    await add_endpoint(sessions, webhooks, hooked, "http://127.0.0.1:9/c", ["message.failed"])
    mine = await add_messages(sessions, hooked, 3)
    theirs = await add_messages(sessions, unhooked, 2)

    await stage_sent(sessions, mine + theirs)

    rows = await deliveries(sessions)
    assert sorted((row.endpoint_id, row.payload["data"]["message_id"]) for row in rows) == sorted(
        (endpoint, message) for endpoint in (first, second) for message in mine
    )
    by_message: dict[int, set[str]] = {}
    for row in rows:
        by_message.setdefault(row.payload["data"]["message_id"], set()).add(row.event_id)
    assert all(len(ids) == 1 for ids in by_message.values())
    assert len({row.event_id for row in rows}) == 3
    sample = rows[0].payload
    assert sample["type"] == "message.sent"
    assert datetime.fromisoformat(sample["timestamp"]).tzinfo is not None
    assert sample["data"]["recipient"].endswith("@example.com")
    assert sample["data"]["gmail_id"].startswith("g")
    assert "secret" not in msgspec.json.encode(sample).decode()  # ids and facts, never the content


async def test_staging_rolls_back_with_the_change(
    sessions: async_sessionmaker[AsyncSession], webhooks: Webhooks
) -> None:
    """Staged deliveries belong to the change's transaction: a rollback leaves none."""
    user = next(_users)
    await add_endpoint(sessions, webhooks, user, "http://127.0.0.1:9/a", ["campaign.launched"])

    async def change_that_fails() -> None:
        async with transaction(sessions) as session:
            await stage_event(session, user, "campaign.launched", {"campaign_id": 5}, datetime.now(UTC))
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await change_that_fails()
    assert await deliveries(sessions) == []


async def test_a_single_event_goes_to_the_users_subscribed_endpoints_only(
    sessions: async_sessionmaker[AsyncSession], webhooks: Webhooks
) -> None:
    """stage_event writes one row per subscribed, enabled endpoint of that user, sharing one event id."""
    user, other = next(_users), next(_users)
    subscribed, _ = await add_endpoint(sessions, webhooks, user, "http://127.0.0.1:9/a", ["campaign.paused"])
    disabled, _ = await add_endpoint(sessions, webhooks, user, "http://127.0.0.1:9/b", ["campaign.paused"])
    await add_endpoint(sessions, webhooks, other, "http://127.0.0.1:9/c", ["campaign.paused"])
    async with transaction(sessions) as session:
        await webhooks.update(session, user, disabled, UpdateEndpoint(enabled=False))
        event_id = await stage_event(
            session, user, "campaign.paused", {"campaign_id": 9, "reason": "failures"}, datetime.now(UTC)
        )

    rows = await deliveries(sessions)
    assert [(row.endpoint_id, row.event_id) for row in rows] == [(subscribed, event_id)]
    assert rows[0].payload["data"] == {"campaign_id": 9, "reason": "failures"}


# --- delivery -----------------------------------------------------------------------------------


async def test_a_delivery_is_signed_as_standard_webhooks_says(hooked: Hooked) -> None:
    """The receiver gets the staged payload with webhook-id/-timestamp/-signature that the
    standardwebhooks library verifies with the secret shown at creation."""
    await hooked.send()

    assert await hooked.deliver() == 1

    [request] = hooked.receiver.received
    payload = Webhook(hooked.secret).verify(request.body, request.headers)
    [row] = await hooked.deliveries()
    assert payload == row.payload
    assert request.event_id == row.event_id
    assert request.headers["content-type"] == "application/json"
    assert row.state == "delivered"
    with pytest.raises(Exception, match="signature"):
        Webhook(domain.shown_secret(b"x" * 32)).verify(request.body, request.headers)


async def test_a_failed_attempt_is_logged_and_retried_after_the_schedule(hooked: Hooked) -> None:
    """500 then 200: the first attempt is logged (status, latency, a clean excerpt), the next waits
    for the schedule, then delivers under the same event id."""
    await hooked.send()
    hooked.receiver.answers = [500]
    deliverer = hooked.courier(retry_schedule_seconds=[30.0, 60.0])

    assert await deliverer.deliver_due() == 1
    [row] = await hooked.deliveries()
    [first] = await hooked.attempts(row)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == first.at + timedelta(seconds=30)
    assert (first.status_code, first.error) == (500, "answered 500")
    assert first.response_excerpt == "<html> oops server error</html>"
    assert first.latency_ms >= 0

    assert await deliverer.deliver_due() == 0  # not due yet
    hooked.clock.advance(seconds=30)
    assert await deliverer.deliver_due() == 1

    [row] = await hooked.deliveries()
    assert row.state == "delivered"
    assert [a.status_code for a in await hooked.attempts(row)] == [500, 200]
    assert len(set(hooked.receiver.event_ids())) == 1
    assert len(hooked.receiver.received) == 2


async def test_a_delivery_is_given_up_after_the_last_retry(hooked: Hooked) -> None:
    """Past the schedule's last wait the delivery is failed, and no later round sends it."""
    await hooked.send()
    hooked.receiver.answers = [503, 503]
    deliverer = hooked.courier(retry_schedule_seconds=[5.0])

    await deliverer.deliver_due()
    hooked.clock.advance(seconds=5)
    await deliverer.deliver_due()
    hooked.clock.advance(seconds=3600)
    assert await deliverer.deliver_due() == 0
    [row] = await hooked.deliveries()
    assert (row.state, row.attempts) == ("failed", 2)


async def test_a_receiver_down_for_a_minute_then_up_gets_every_event_exactly_once(hooked: Hooked) -> None:
    """1,000 events while the receiver refuses connections: each is retried, and once it is up
    it receives every event once, with no duplicate request at all."""
    receiver = hooked.receiver
    await receiver.stop()  # not listening: connections are refused
    await hooked.send(1000)

    async def attempted_once() -> bool:
        async with transaction(hooked.sessions) as session:
            count = await session.scalar(select(func.count()).select_from(webhook_attempts))
        return count == 1000  # the next attempts wait for the clock (a minute)

    async def all_delivered() -> bool:
        return all(row.state == "delivered" for row in await hooked.deliveries())

    async with running(hooked.courier(retry_schedule_seconds=[60.0, 60.0, 60.0])):
        await eventually(attempted_once, timeout=60)
        [sample] = await hooked.attempts((await hooked.deliveries())[0])
        assert sample.status_code is None
        assert sample.error.startswith("could not connect")

        await receiver.start()
        hooked.clock.advance(seconds=60)
        await eventually(all_delivered, timeout=60)

    counts = Counter(receiver.event_ids())
    assert len(counts) == 1000
    assert max(counts.values()) == 1
    for request in receiver.received[:20]:
        Webhook(hooked.secret).verify(request.body, request.headers)


async def test_couriers_side_by_side_never_deliver_a_row_twice(hooked: Hooked, hook: Hook) -> None:
    """Three couriers over the same due deliveries: the lease hands each row to one of them."""
    for each in (hooked, await hook(), await hook()):
        await each.send(100)

    async def settled() -> bool:
        return all(row.state == "delivered" for row in await deliveries(hooked.sessions))

    async with running(*(hooked.courier(concurrency=16, per_endpoint_concurrency=4) for _ in range(3))):
        await eventually(lambda: len(hooked.receiver.received) >= 300, timeout=60)
        await eventually(settled, timeout=10)
    assert len(hooked.receiver.received) == 300
    assert len(set(hooked.receiver.event_ids())) == 300
    async with transaction(hooked.sessions) as session:
        assert await session.scalar(select(func.max(webhook_deliveries.c.attempts))) == 1


async def test_a_slow_endpoints_backlog_does_not_hold_up_the_others(hook: Hook) -> None:
    """An endpoint that never answers, with a backlog staged first, takes its own slots only:
    another endpoint's event staged after it is delivered meanwhile."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the courier gives up and closes
        writer.close()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    slow = await hook(url=f"http://127.0.0.1:{silent.sockets[0].getsockname()[1]}/hooks")
    await slow.send(50)
    hooked = await hook()
    await hooked.send()
    try:
        async with running(hooked.courier(concurrency=8, per_endpoint_concurrency=2, timeout_seconds=60.0)):
            await eventually(lambda: len(hooked.receiver.received) == 1)
    finally:
        silent.close()
    [row] = await hooked.deliveries()
    assert row.state == "delivered"


async def test_a_private_target_is_refused_at_registration(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Loopback, private and link-local addresses are refused unless the host is allowlisted."""
    strict = Webhooks(webhook_settings(allowed_hosts=[]), COMPLIANCE)
    for url in ("https://127.0.0.1/hooks", "https://10.0.0.1/hooks", "https://169.254.169.254/latest"):
        async with transaction(sessions) as session:
            with pytest.raises(RefusedTarget, match="private, loopback or link-local") as refused:
                await strict.create(session, next(_users), CreateEndpoint(url=url, events=["message.sent"]))
        assert refused.value.extra == {"field": "url"}
    async with transaction(sessions) as session:
        with pytest.raises(RefusedTarget, match="https"):
            await strict.create(
                session, next(_users), CreateEndpoint(url="http://93.184.215.14/", events=["message.sent"])
            )
    assert await deliveries(sessions) == []


async def test_a_target_refused_at_delivery_fails_the_attempt_without_a_request(
    receiver: Receiver, hook: Hook
) -> None:
    """An endpoint whose name resolves to a private address when the courier sends (here: allowed
    at registration, no longer at delivery) fails that attempt, saying why; nothing is sent."""
    lenient = Webhooks(webhook_settings(allowed_hosts=["localhost"]), COMPLIANCE)
    hooked = await hook(url=f"https://localhost:{receiver.port}/hooks", registry=lenient)
    await hooked.send()

    assert await hooked.deliver(allowed_hosts=[]) == 1

    [row] = await hooked.deliveries()
    [attempt] = await hooked.attempts(row)
    assert row.state == "pending"
    assert attempt.status_code is None
    assert "refused target" in attempt.error
    assert "private, loopback or link-local" in attempt.error
    assert receiver.received == []


async def test_a_redirect_is_a_failed_attempt_not_followed(hooked: Hooked) -> None:
    """A 307 is not followed: it is logged as a failed attempt saying to give the final URL."""
    await hooked.send()
    hooked.receiver.answers = [307]

    await hooked.deliver()

    [row] = await hooked.deliveries()
    [attempt] = await hooked.attempts(row)
    assert (row.state, attempt.status_code) == ("pending", 307)
    assert "redirects are not followed" in attempt.error
    assert len(hooked.receiver.received) == 1


async def test_an_endpoint_failing_beyond_the_window_is_disabled_with_the_reason(hooked: Hooked) -> None:
    """Every attempt failing for longer than the window disables the endpoint, naming the last
    error; enabling it again clears the record, and a success clears failing_since."""
    await hooked.send()
    hooked.receiver.answers = [500, 500, 500]
    deliverer = hooked.courier(retry_schedule_seconds=[40.0, 40.0, 40.0], disable_after_failing_seconds=60.0)

    await deliverer.deliver_due()
    after_one = await hooked.get()
    assert after_one.enabled
    assert after_one.failing_since is not None

    hooked.clock.advance(seconds=40)
    await deliverer.deliver_due()
    assert (await hooked.get()).enabled

    hooked.clock.advance(seconds=40)
    await deliverer.deliver_due()
    disabled = await hooked.get()
    assert not disabled.enabled
    assert disabled.disabled_reason is not None
    assert "answered 500" in disabled.disabled_reason
    assert "every delivery failed since" in disabled.disabled_reason

    hooked.clock.advance(seconds=40)
    assert await deliverer.deliver_due() == 0  # a disabled endpoint is sent nothing
    await hooked.send()
    assert len(await hooked.deliveries()) == 1  # nor staged anything

    enabled = await hooked.update(UpdateEndpoint(enabled=True))
    assert (enabled.enabled, enabled.disabled_reason, enabled.failing_since) == (True, None, None)
    assert await deliverer.deliver_due() == 1  # the waiting delivery goes out
    [row] = await hooked.deliveries()
    assert row.state == "delivered"


async def test_a_replay_delivers_the_event_again_under_the_same_id(hooked: Hooked) -> None:
    """A delivered (or failed) delivery replayed is due now, with the same webhook-id; one whose
    attempt is in flight (claimed, its outcome not logged yet) cannot be replayed."""
    await hooked.send()
    [row] = await hooked.deliveries()
    # as a courier's claim leaves it
    await hooked.force(attempts=1, next_attempt_at=hooked.clock.now() + timedelta(seconds=40))
    with pytest.raises(Conflict, match="being attempted right now"):
        await hooked.replay(row.id)
    await hooked.force(attempts=0, next_attempt_at=hooked.clock.now())
    deliverer = hooked.courier()
    await deliverer.deliver_due()

    replayed = await hooked.replay(row.id)
    assert (replayed.state, replayed.event_id) == ("pending", row.event_id)
    assert await deliverer.deliver_due() == 1

    assert hooked.receiver.event_ids() == [row.event_id, row.event_id]
    [row] = await hooked.deliveries()
    assert (row.state, row.attempts, row.schedule_from) == ("delivered", 2, 2)


async def test_a_delivery_waiting_for_a_retry_is_brought_forward_by_a_replay(hooked: Hooked) -> None:
    """A failed attempt's delivery waits for the schedule; replaying it makes it due now."""
    await hooked.send()
    hooked.receiver.answers = [500]
    deliverer = hooked.courier(retry_schedule_seconds=[3600.0])
    await deliverer.deliver_due()
    [row] = await hooked.deliveries()
    await hooked.replay(row.id)
    assert await deliverer.deliver_due() == 1
    [row] = await hooked.deliveries()
    assert (row.state, row.attempts) == ("delivered", 2)


async def test_a_test_event_goes_to_the_one_endpoint(hook: Hook) -> None:
    """send_test stages a webhook.test event for that endpoint only, whatever it subscribed to."""
    hooked = await hook(events=["campaign.completed"])
    staged = await hooked.send_test()
    await hooked.deliver()
    [request] = hooked.receiver.received
    payload = Webhook(hooked.secret).verify(request.body, request.headers)
    assert payload["type"] == "webhook.test"
    assert request.event_id == staged.event_id


# --- endpoints ----------------------------------------------------------------------------------


async def test_other_users_endpoints_and_deliveries_are_not_found(
    sessions: async_sessionmaker[AsyncSession], webhooks: Webhooks
) -> None:
    """Every use case answers NotFound for another user's endpoint."""
    owner, stranger = next(_users), next(_users)
    endpoint, _ = await add_endpoint(sessions, webhooks, owner, "http://127.0.0.1:9/a", ["campaign.launched"])
    async with transaction(sessions) as session:
        await stage_event(session, owner, "campaign.launched", {"campaign_id": 1}, datetime.now(UTC))
    [row] = await deliveries(sessions, endpoint)
    calls = [
        lambda s: webhooks.get(s, stranger, endpoint),
        lambda s: webhooks.update(s, stranger, endpoint, UpdateEndpoint(description="mine")),
        lambda s: webhooks.delete(s, stranger, endpoint),
        lambda s: webhooks.rotate_secret(s, stranger, endpoint),
        lambda s: webhooks.deliveries(s, stranger, endpoint, cursor=None, limit=10),
        lambda s: webhooks.replay(s, stranger, endpoint, row.id),
        lambda s: webhooks.send_test(s, stranger, endpoint),
    ]
    for call in calls:
        async with transaction(sessions) as session:
            with pytest.raises(NotFound):
                await call(session)
    async with transaction(sessions) as session:
        assert await webhooks.list_endpoints(session, stranger) == []
        assert [e.id for e in await webhooks.list_endpoints(session, owner)] == [endpoint]


async def test_registration_checks_the_events_and_the_number_of_endpoints(
    sessions: async_sessionmaker[AsyncSession], webhooks: Webhooks
) -> None:
    """Unknown or no event types are refused saying which exist; the 21st endpoint is a conflict."""
    user = next(_users)
    async with transaction(sessions) as session:
        with pytest.raises(Invalid, match=r"unknown event type 'message\.opened'"):
            await webhooks.create(
                session, user, CreateEndpoint(url="http://127.0.0.1:9/", events=["message.opened"])
            )
        with pytest.raises(Invalid, match="choose at least one"):
            await webhooks.create(session, user, CreateEndpoint(url="http://127.0.0.1:9/", events=[]))
    for n in range(domain.MAX_ENDPOINTS_PER_USER):
        await add_endpoint(
            sessions, webhooks, user, f"http://127.0.0.1:9/{n}", ["message.sent", "message.sent"]
        )
    async with transaction(sessions) as session:
        with pytest.raises(Conflict, match="delete one"):
            await webhooks.create(
                session, user, CreateEndpoint(url="http://127.0.0.1:9/", events=["message.sent"])
            )
        assert (await webhooks.list_endpoints(session, user))[0].events == ["message.sent"]


async def test_the_secret_is_stored_sealed_and_rotates(
    sessions: async_sessionmaker[AsyncSession], webhooks: Webhooks
) -> None:
    """The database holds the secret sealed under the derived key (bound to its user), never in
    clear; rotating gives a new one."""
    user = next(_users)
    endpoint, secret = await add_endpoint(sessions, webhooks, user, "http://127.0.0.1:9/a")
    raw = Webhook(secret)._whsecret
    assert secret.startswith("whsec_")
    assert 24 <= len(raw) <= 64
    async with transaction(sessions) as session:
        sealed = await session.scalar(
            select(webhook_endpoints.c.secret_sealed).where(webhook_endpoints.c.id == endpoint)
        )
        rotated = await webhooks.rotate_secret(session, user, endpoint)
    assert sealed is not None
    assert raw not in sealed
    box = SecretBox(COMPLIANCE.key())
    assert box.open(sealed, user_id=user) == raw
    with pytest.raises(Exception):  # noqa: B017, PT011 (cryptography's InvalidTag)
        box.open(sealed, user_id=user + 1)
    assert rotated.secret != secret


async def test_deliveries_are_listed_newest_first_with_their_attempts_by_cursor(hooked: Hooked) -> None:
    """Pages go newest first; each delivery carries its attempts; the cursor continues after."""
    await hooked.send(3)
    await hooked.deliver()
    first = await hooked.page(cursor=None, limit=2)
    assert first.next_cursor is not None
    second = await hooked.page(cursor=first.next_cursor, limit=2)
    ids = [d.id for d in first.items + second.items]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 3
    assert second.next_cursor is None
    assert all(len(d.attempts) == 1 and d.attempts[0].status_code == 200 for d in first.items)


async def test_an_expired_lease_is_claimed_again_and_a_late_outcome_changes_nothing(hooked: Hooked) -> None:
    """A courier that died after claiming leaves the row to another once the lease ends."""
    await hooked.send()
    # a claim whose courier never came back
    await hooked.force(attempts=1, next_attempt_at=hooked.clock.now() + timedelta(seconds=32))
    deliverer = hooked.courier()
    assert await deliverer.deliver_due() == 0
    hooked.clock.advance(seconds=33)
    assert await deliverer.deliver_due() == 1
    [row] = await hooked.deliveries()
    assert (row.state, row.attempts) == ("delivered", 2)


async def test_an_outcome_of_a_deleted_delivery_does_not_fail_the_others(
    sessions: async_sessionmaker[AsyncSession], webhooks: Webhooks
) -> None:
    """An endpoint deleted while its delivery was in flight: that outcome is skipped, and the
    outcomes written with it are kept."""
    kept_user, gone_user = next(_users), next(_users)
    kept, _ = await add_endpoint(sessions, webhooks, kept_user, "http://127.0.0.1:9/a", ["campaign.launched"])
    gone, _ = await add_endpoint(sessions, webhooks, gone_user, "http://127.0.0.1:9/b", ["campaign.launched"])
    async with transaction(sessions) as session:
        for user in (kept_user, gone_user):
            await stage_event(session, user, "campaign.launched", {"campaign_id": 1}, datetime.now(UTC))
    rows = {row.endpoint_id: row for row in await deliveries(sessions)}
    async with transaction(sessions) as session:
        await webhooks.delete(session, gone_user, gone)

    def answered(row: Any, user: int) -> Outcome:
        job = Job(
            delivery_id=row.id,
            attempt=1,
            schedule_from=1,
            event_id=row.event_id,
            payload=row.payload,
            endpoint_id=row.endpoint_id,
            user_id=user,
            url="http://127.0.0.1:9/",
            secret_sealed=b"",
        )
        return Outcome(job=job, at=datetime.now(UTC), status_code=204, latency_ms=3, excerpt=None, error=None)

    async with transaction(sessions) as session:
        await record_outcomes(
            session, [answered(rows[gone], gone_user), answered(rows[kept], kept_user)], webhook_settings()
        )
    [row] = await deliveries(sessions)
    assert (row.endpoint_id, row.state) == (kept, "delivered")
    assert [a.status_code for a in await attempts_of(sessions, row.id)] == [204]


def test_an_excerpt_is_short_and_printable() -> None:
    """A receiver's answer is kept as at most 500 characters, control characters turned into spaces."""
    assert domain.excerpt(b"a\x00b\r\n\tc\xff") == "a b c\ufffd"
    assert len(domain.excerpt(b"x" * 10_000)) == 500
