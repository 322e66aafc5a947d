"""The queue service over HTTP with real PostgreSQL and RabbitMQ; other services faked at the transport.

The suite gets its own RabbitMQ vhost, so no other service's consumer can take the SendEmail
commands the tests read back. One app serves the whole suite; every test that reaches it starts from empty
queue tables and an empty command queue.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from litestar import Litestar
from sqlalchemy import text

from mailmerger_queue.app import create_app
from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_queue.models import metadata
from mailmerger_queue.sequences.builder import FollowUpBuilder, open_follow_ups
from mailmerger_queue.settings import QueueSettings
from mailmerger_queue.worker import open_dispatcher
from mailmerger_shared.broker.topology import QUEUES, declare_queue
from mailmerger_shared.runtime import Infrastructure, open_infrastructure
from mailmerger_shared.settings import load_service
from tests.conftest import AMQP_BASE, RUN_ID
from tests.queue.fakes import FakeServices
from tests.queue.world import FakeClock, World
from tests.tokens import TestSigner

SIGNER = TestSigner()
# Every table of the queue's schema: a table added later is emptied too, without a list to keep.
_TABLES = ", ".join(f"queue.{table.name}" for table in metadata.sorted_tables)
_ids = itertools.count(1000)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def queue_amqp_url() -> Iterator[str]:
    vhost = f"mm_test_{RUN_ID}_queue"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"{AMQP_BASE}/{vhost}"
    _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def settings(service_env: dict[str, str], queue_amqp_url: str) -> QueueSettings:
    env = {
        **service_env,
        "MM_AMQP_URL": queue_amqp_url,
        "MM_COMPOSE_PROGRESS_INTERVAL_SECONDS": "0.05",
        "MM_COMPOSE_BUILD_BATCH_ROWS": "50",
        "MM_DISPATCH_TICK_SECONDS": "0.05",
        # New accounts' default limit: high enough that a tick sends a test's handful of emails;
        # the pacing tests set an account's own limit.
        "MM_DISPATCH_PER_MINUTE_LIMIT": "6000",
    }
    return load_service(QueueSettings, env)


@pytest.fixture(scope="session")
def fake() -> FakeServices:
    return FakeServices()


@pytest.fixture(scope="session")
async def app(settings: QueueSettings, fake: FakeServices) -> AsyncIterator[Litestar]:
    application = create_app(settings, jwks=SIGNER.jwks, internal_transport=fake.transport())
    # Requests go to the app itself, not to ``manager.app``: that wrapper hands every request the
    # same lifespan ``state`` dict, where Litestar caches per-request data (body, headers, user).
    async with LifespanManager(application, startup_timeout=30):
        yield application


@pytest.fixture(scope="session")
async def infra(settings: QueueSettings, app: Litestar) -> AsyncIterator[Infrastructure]:
    async with open_infrastructure(
        "queue-tests", database=settings.database, broker=settings.broker
    ) as opened:
        assert opened.amqp is not None
        channel = await opened.amqp.channel()
        await declare_queue(
            channel, QUEUES["sender.send-email"], delivery_limit=settings.broker.delivery_limit
        )
        await channel.close()
        yield opened


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://queue") as http:
        yield http


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC) + timedelta(seconds=1))


@pytest.fixture
async def dispatcher(infra: Infrastructure, settings: QueueSettings, clock: FakeClock) -> Dispatcher:
    return await open_dispatcher(infra, settings, clock)


@pytest.fixture
async def builder(
    settings: QueueSettings, infra: Infrastructure, fake: FakeServices, dispatcher: Dispatcher
) -> AsyncIterator[FollowUpBuilder]:
    """The follow-up builder, wired into the test's dispatcher as the worker wires it."""
    assert infra.sessions is not None
    async with open_follow_ups(settings, infra.sessions, transport=fake.transport()) as built:
        dispatcher.follow_ups = built
        yield built


@pytest.fixture(autouse=True)
def _empty_ledger(request: pytest.FixtureRequest) -> None:
    """Every test that reaches the queue's infrastructure starts from empty tables and an empty
    command queue; a pure test (the domain's rules) reaches none, so it opens none."""
    if request.node.get_closest_marker("pure") is None:
        request.getfixturevalue("_emptied_ledger")


@pytest.fixture
async def _emptied_ledger(infra: Infrastructure, fake: FakeServices) -> None:
    assert infra.engine is not None
    async with infra.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {_TABLES}"))
    assert infra.amqp is not None
    channel = await infra.amqp.channel()
    queue = await channel.get_queue("sender.send-email", ensure=False)
    await queue.purge()
    await channel.close()
    fake.down.clear()


@pytest.fixture
def world(client: httpx.AsyncClient, infra: Infrastructure, fake: FakeServices) -> World:
    return World(client=client, infra=infra, fake=fake, signer=SIGNER, ids=_ids)
