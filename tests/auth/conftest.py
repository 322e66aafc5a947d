"""One auth app for the module's tests, against this run's PostgreSQL, Redis and RabbitMQ and an
in-process Google emulator that approves every consent for the account a test picks.

Tests keep out of each other's way by using fresh emails (and fresh client addresses, for the
throttle); the clock is put back after every test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import aio_pika
import httpx
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from mailmerger_auth.app import create_app
from mailmerger_auth.settings import AuthSettings
from mailmerger_emulator.google.app import create_app as create_emulator
from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_emulator.google.signing import generate_signing_key
from mailmerger_shared import contracts as c
from mailmerger_shared.broker.topology import EVENTS_EXCHANGE, declare_exchanges
from mailmerger_shared.db import drop_database, ensure_database
from mailmerger_shared.migrations import upgrade
from mailmerger_shared.settings import load_service
from tests.auth.support import GOOGLE_URL, PUBLIC_URL, Harness, MovableClock, RecordingTransport, Sessions

# The minimum argon2 parameters the settings allow (the defaults are tested once, in
# test_passwords.py); a second client address per test keeps the address throttle per test.
TEST_ENV = {
    "MM_AUTH_ARGON2_MEMORY_KIB": str(19 * 1024),
    "MM_AUTH_ARGON2_TIME_COST": "2",
    "MM_AUTH_ARGON2_PARALLELISM": "1",
    "MM_AUTH_LOGIN_ATTEMPTS_PER_ACCOUNT": "5",
    "MM_AUTH_LOGIN_ATTEMPTS_PER_ADDRESS": "8",
    "MM_AUTH_TRUSTED_PROXY_HOPS": "1",
    "MM_GOOGLE_CLIENT_ID": "mailmerger-dev",
    "MM_GOOGLE_CLIENT_SECRET": "mailmerger-dev-secret",
    "MM_GOOGLE_DISCOVERY_URL": f"{GOOGLE_URL}/.well-known/openid-configuration",
    "MM_GOOGLE_METADATA_TIER": "true",
    "MM_SYSTEM_MAIL_GMAIL_API_URL": GOOGLE_URL,
}
ACCOUNT_EVENTS = (c.UserDeleted, c.GmailConnected, c.GmailDisconnected, c.GmailReconnectRequired)

MakeApp = Callable[..., Awaitable[Harness]]


@pytest.fixture(scope="package")
def google_key() -> RSAPrivateKey:
    return generate_signing_key()


@pytest.fixture(scope="package")
def emulator_app(google_key: RSAPrivateKey) -> Any:
    return create_emulator(
        GoogleEmulatorSettings(public_url=GOOGLE_URL, auto_approve=True), signing_key=google_key
    )


@pytest.fixture(scope="package")
async def events(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue receiving every event auth publishes (which also makes them routable in this vhost)."""
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    exchanges = await declare_exchanges(channel)
    queue = await channel.declare_queue(f"auth-tests-{uuid.uuid4().hex[:8]}", durable=True)
    for event in ACCOUNT_EVENTS:
        await queue.bind(exchanges[EVENTS_EXCHANGE], routing_key=event.TAG)
    yield queue
    await connection.close()


@pytest.fixture(scope="package")
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(migrated_database)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="package")
async def private_sessions(database_url: str) -> AsyncIterator[Sessions]:
    """A database with only the auth schema, for tests that would disturb the shared app's data."""
    url = f"{database_url}_auth"
    await ensure_database(url)
    await asyncio.to_thread(upgrade, "mailmerger_auth", url)
    engine = create_async_engine(url)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()
    await drop_database(url)


@pytest.fixture(scope="package")
async def make_app(
    service_env: dict[str, str],
    emulator_app: Any,
    engine: AsyncEngine,
    events: aio_pika.abc.AbstractQueue,
) -> AsyncIterator[MakeApp]:
    """Start an auth app (settings overrides as env vars); all stop when the auth tests are done."""
    async with AsyncExitStack() as stack:

        async def make(*, clock: MovableClock | None = None, **env: str) -> Harness:
            settings = load_service(AuthSettings, {**service_env, **TEST_ENV, **env})
            clock = clock or MovableClock()
            google = RecordingTransport(emulator_app)
            app = create_app(settings, google_transport=google, clock=clock)
            await stack.enter_async_context(LifespanManager(app, startup_timeout=30))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)
            )
            emulator = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator_app), base_url=GOOGLE_URL)
            )
            return Harness(app, client, settings, clock, google, emulator, engine)

        yield make


@pytest.fixture(scope="package")
async def shared_harness(make_app: MakeApp) -> Harness:
    return await make_app()


@pytest.fixture
def auth(shared_harness: Harness) -> Iterator[Harness]:
    """The shared app, seen from a fresh browser at a fresh client address; time put back after."""
    shared_harness.client.cookies.clear()
    # The proxy-appended (last) entry is the one auth trusts (MM_AUTH_TRUSTED_PROXY_HOPS=1).
    client_address = f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"
    shared_harness.client.headers["X-Forwarded-For"] = f"192.0.2.1, {client_address}"
    yield shared_harness
    shared_harness.clock.reset()
    shared_harness.google.requests.clear()
    shared_harness.google.token_responses.clear()
