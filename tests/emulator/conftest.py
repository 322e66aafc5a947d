"""An emulator per test, reached in-process through httpx's ASGI transport."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from mailmerger_emulator.google.app import create_app
from mailmerger_emulator.google.signing import generate_signing_key
from tests.emulator.helpers import PUBLIC_URL, FakeClock, MakeEmulator, emulator_settings


@pytest.fixture(scope="session")
def signing_key() -> RSAPrivateKey:
    """One RSA key for the whole run: generating one per app would dominate the suite's time."""
    return generate_signing_key()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(float(int(time.time())))


@pytest.fixture
async def make_emulator(clock: FakeClock, signing_key: RSAPrivateKey) -> AsyncIterator[MakeEmulator]:
    """Build an emulator with settings overrides; the client is closed after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> httpx.AsyncClient:
            app = create_app(emulator_settings(**overrides), clock=clock, signing_key=signing_key)
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)
            return await stack.enter_async_context(client)

        yield make


@pytest.fixture
async def emulator(make_emulator: MakeEmulator) -> httpx.AsyncClient:
    """An emulator with default settings and auto-approval (tests can't click consent pages)."""
    return await make_emulator(auto_approve=True)
