"""Operating the system: an all-in-one of its own (own database, vhost and Redis prefix) over real HTTP.

The suite's system must not share a database or a broker vhost with another all-in-one of the same
test run (tests/system): two dispatchers and senders over one ledger would deliver each other's
messages through the wrong emulator.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from mailmerger_shared.db import drop_database, ensure_database
from tests.conftest import AMQP_BASE, PG_BASE, RUN_ID
from tests.support import eventually
from tests.system.harness import SystemUnderTest


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def private_vhost(suffix: str) -> Iterator[str]:
    vhost = f"mm_test_{RUN_ID}_{suffix}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"{AMQP_BASE}/{vhost}"
    _rabbitmqctl("delete_vhost", vhost)


async def private_database(suffix: str) -> AsyncIterator[str]:
    from mailmerger.migrate import migrate
    from mailmerger_shared.settings import DatabaseSettings

    url = f"{PG_BASE}/mm_test_{RUN_ID}_{suffix}"
    await ensure_database(url)
    await migrate("all", database=DatabaseSettings(url=url))
    yield url
    await drop_database(url)


@pytest.fixture(autouse=True)
def state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The CLI's saved sessions and resume state go to the test's own directory, not the home's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture(scope="session")
def operate_amqp_url() -> Iterator[str]:
    yield from private_vhost("operate")


@pytest.fixture(scope="session")
async def operate_database() -> AsyncIterator[str]:
    async for url in private_database("operate"):
        yield url


@pytest.fixture(scope="session")
def operate_env(service_env: dict[str, str], operate_database: str, operate_amqp_url: str) -> dict[str, str]:
    return {
        **service_env,
        "MM_DB_URL": operate_database,
        "MM_AMQP_URL": operate_amqp_url,
        "MM_REDIS_KEY_PREFIX": f"mm_test_{RUN_ID}_operate:",
    }


@pytest.fixture(scope="session")
async def operated(operate_env: dict[str, str]) -> AsyncIterator[SystemUnderTest]:
    """The all-in-one under uvicorn on free ports, as ``make run`` serves it."""
    env = dict(operate_env)
    sut = SystemUnderTest(env)
    # The demo drives the emulator's consent form itself: keep the emulator's default (ask).
    sut.env.pop("MM_EMULATOR_AUTO_APPROVE", None)
    sut.start()
    try:
        await eventually(lambda: sut.started, timeout=90, interval=0.1)
        async with httpx.AsyncClient(base_url=sut.base_url) as client:

            async def ready() -> bool:
                return (await client.get("/ready")).status_code == 200

            await eventually(ready, timeout=30, interval=0.2)
        yield sut
    finally:
        sut.stop()
