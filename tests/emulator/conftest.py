"""An emulator per test, reached in-process through httpx's ASGI transport.

Building the Litestar app costs about a tenth of a second, and most tests want the defaults: the
``emulator`` fixture is one app for the run, reset (``POST /_emulator/reset``) before each test.
``make_emulator`` builds a fresh app with the settings a test needs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from litestar import Litestar

from mailmerger_emulator.google.app import create_app
from mailmerger_emulator.google.signing import generate_signing_key
from tests.emulator.helpers import PUBLIC_URL, FakeClock, MakeEmulator, emulator_settings


@pytest.fixture(scope="session")
def signing_key() -> RSAPrivateKey:
    """One RSA key for the whole run: generating one per app would dominate the suite's time."""
    return generate_signing_key()


@pytest.fixture(scope="session")
def run_clock() -> FakeClock:
    """The clock the run's shared emulator holds; ``clock`` sets it to now for each test."""
    return FakeClock(float(int(time.time())))


@pytest.fixture
def clock(run_clock: FakeClock) -> FakeClock:
    """Epoch seconds, now at the start of each test; the test moves it."""
    run_clock.now = float(int(time.time()))
    return run_clock


@pytest.fixture
async def make_emulator(clock: FakeClock, signing_key: RSAPrivateKey) -> AsyncIterator[MakeEmulator]:
    """Build an emulator with settings overrides; the client is closed after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> httpx.AsyncClient:
            app = create_app(emulator_settings(**overrides), clock=clock, signing_key=signing_key)
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)
            return await stack.enter_async_context(client)

        yield make


@pytest.fixture(scope="session")
def default_app(run_clock: FakeClock, signing_key: RSAPrivateKey) -> Litestar:
    return create_app(emulator_settings(auto_approve=True), clock=run_clock, signing_key=signing_key)


@pytest.fixture
async def emulator(default_app: Litestar, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    """An emulator with default settings and auto-approval (tests can't click consent pages), reset:
    no users, tokens, messages, quota spent or faults."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=default_app), base_url=PUBLIC_URL
    ) as client:
        (await client.post("/_emulator/reset")).raise_for_status()
        yield client
