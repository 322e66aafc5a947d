"""The templates app under test: one instance for the session, on this run's Postgres, Redis and RabbitMQ.

Tests stay independent by acting as users no other test uses (``new_user``).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from litestar import Litestar

from mailmerger_shared.settings import load_service
from mailmerger_shared.web.internal import caller_headers
from mailmerger_templates.app import create_app
from mailmerger_templates.settings import TemplatesSettings
from tests.templates.helpers import User
from tests.tokens import TestSigner

_user_ids = itertools.count(1000)


@pytest.fixture(scope="session")
def signer() -> TestSigner:
    return TestSigner()


@pytest.fixture(scope="session")
def templates_settings(service_env: dict[str, str]) -> TemplatesSettings:
    return load_service(TemplatesSettings, service_env)


@pytest.fixture(scope="session")
async def templates_app(templates_settings: TemplatesSettings, signer: TestSigner) -> AsyncIterator[Litestar]:
    app = create_app(templates_settings, jwks=signer.jwks)
    async with LifespanManager(app, startup_timeout=30):
        yield app


@pytest.fixture
async def client(templates_app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=templates_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://templates") as client:
        yield client


@pytest.fixture
def new_user(signer: TestSigner) -> Callable[[], User]:
    """Make a user no other test uses."""

    def make() -> User:
        user_id = next(_user_ids)
        return User(user_id, signer.bearer(user_id))

    return make


@pytest.fixture
def internal(templates_settings: TemplatesSettings) -> dict[str, str]:
    """Headers of a service calling the internal routes."""
    return caller_headers("queue", templates_settings.queue_credential.queue_token)


@pytest.fixture
def redis_client(templates_app: Litestar) -> aioredis.Redis:
    client: aioredis.Redis = templates_app.state.infra.redis
    return client
