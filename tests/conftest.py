"""Fixtures every test level shares: real PostgreSQL, Redis and RabbitMQ, isolated per run.

A run gets its own database (dropped at the end), its own RabbitMQ vhost (deleted at the end)
and its own Redis key prefix, so concurrent runs never see each other's data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from mailmerger_shared.db import drop_database, ensure_database

RUN_ID = uuid.uuid4().hex[:10]
PG_BASE = os.environ.get("MM_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP_BASE = os.environ.get("MM_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("MM_TEST_REDIS", "redis://127.0.0.1:6379/0")

# The fixtures that reach PostgreSQL, Redis or RabbitMQ (or start a server of their own): every
# other fixture that needs infrastructure builds on one of these. A fixture that opens
# infrastructure without them belongs here, or `make unit-fast` (run with none up) fails on it.
INFRASTRUCTURE_FIXTURES = frozenset(
    {
        "database_url",
        "amqp_url",
        "redis_prefix",
        "operate_database",  # tests/operate: a database and a vhost of their own
        "operate_amqp_url",
        "first_run_infrastructure",
        "sealed_under_old_key",  # tests/platform/test_rekey.py: a database of its own
        "private_redis",  # tests/platform/test_all_in_one.py: a Redis server it stops and starts
        "chaos_base",  # tests/fault: private PostgreSQL, Redis and RabbitMQ servers
    }
)


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks ``pure`` every test none of whose fixtures reaches infrastructure (``make unit-fast``)."""
    for item in items:
        if INFRASTRUCTURE_FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pure)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MM_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("MM_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    url = f"{PG_BASE}/mm_test_{RUN_ID}"
    await ensure_database(url)
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
async def migrated_database(database_url: str) -> str:
    from mailmerger.migrate import migrate
    from mailmerger_shared.settings import DatabaseSettings

    await migrate("all", database=DatabaseSettings(url=database_url))
    return database_url


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is needed to give the test run its own vhost")
    vhost = f"mm_test_{RUN_ID}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"{AMQP_BASE}/{vhost}"
    rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"mm_test_{RUN_ID}:"


@pytest.fixture(scope="session")
def service_env(migrated_database: str, amqp_url: str, redis_prefix: str) -> dict[str, str]:
    """Environment variables that point every settings group at this run's infrastructure."""
    return {
        "MM_DB_URL": migrated_database,
        "MM_DB_POOL_SIZE": "5",
        "MM_AMQP_URL": amqp_url,
        "MM_REDIS_URL": REDIS_URL,
        "MM_REDIS_KEY_PREFIX": redis_prefix,
        "MM_LOG_JSON": "false",
        "MM_INTERNAL_QUEUE_TOKEN": f"test-queue-token-{RUN_ID}",
        "MM_INTERNAL_SENDER_TOKEN": f"test-sender-token-{RUN_ID}",
    }
