"""The system harness: the all-in-one under real uvicorn servers, one per test module.

One per module, so a module's traffic (the 1,000-message campaign) and emulator state never
reach another's, and never two at once (they share the run's database and broker).
``tests/security`` uses the same fixtures (its conftest imports them from here).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import eventually
from tests.system.harness import SystemUnderTest, User, connect_gmail, sign_up


@pytest.fixture(scope="module")
async def system(service_env: dict[str, str]) -> AsyncIterator[SystemUnderTest]:
    """Every service, the dispatcher, a sender, the emulator and a local S3, served over HTTP."""
    sut = SystemUnderTest(service_env)
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


@pytest.fixture
async def gateway(system: SystemUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous client of the gateway."""
    async with httpx.AsyncClient(base_url=system.base_url, timeout=30.0) as client:
        yield client


@pytest.fixture
async def user(system: SystemUnderTest) -> AsyncIterator[User]:
    """A freshly signed-up user (no Gmail connected)."""
    signed_up = await sign_up(system.base_url)
    yield signed_up
    await signed_up.client.aclose()


@pytest.fixture
async def sending_user(system: SystemUnderTest) -> AsyncIterator[User]:
    """A freshly signed-up user with an emulated Gmail account connected."""
    signed_up = await sign_up(system.base_url, "sender")
    await connect_gmail(signed_up, system.base_url)
    yield signed_up
    await signed_up.client.aclose()
