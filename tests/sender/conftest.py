"""The sender against a real Gmail emulator (uvicorn, real sockets), PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailmerger_sender.adapters.aiohttp_transport import AiohttpTransport
from mailmerger_sender.adapters.attachments import Attachments
from mailmerger_sender.adapters.gmail import HttpGmail
from mailmerger_sender.adapters.tokens import AccessTokens
from mailmerger_sender.delivery import Ports, deliver
from mailmerger_sender.ledger.states import Delivery
from mailmerger_sender.ledger.writer import LedgerWriter
from mailmerger_sender.limiter import AccountLimiter
from mailmerger_sender.models import deliveries, outbox
from mailmerger_sender.settings import DeliverySettings, GmailSettings
from mailmerger_shared import contracts as c
from mailmerger_shared.db import create_engine, create_sessionmaker, transaction
from mailmerger_shared.settings import DatabaseSettings
from mailmerger_shared.web.internal import InternalClient
from tests.sender.support import SEND, Account, FakeAuth, FakeClock, GmailWire, MemoryBlobs, envelope, next_id
from tests.support import eventually

_SERVE = """
import sys, uvicorn
from mailmerger_emulator.google.app import create_app
from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_shared.settings import load
uvicorn.run(create_app(load(GoogleEmulatorSettings)), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", loop="uvloop", http="httptools")
"""

# Small enough that tests reach a settled claim by moving the clock a few seconds.
REQUEST_TIMEOUT = 2.0
TEST_DELIVERY = DeliverySettings(
    prepare_timeout_seconds=1.0,
    settle_margin_seconds=1.0,
    account_sends_per_minute=60_000,
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
async def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The Google emulator under uvicorn in a subprocess, quotas off (tests inject the limits)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MM_")}
    env.update({"MM_EMULATOR_PUBLIC_URL": base_url, "MM_EMULATOR_QUOTAS_ENABLED": "false"})
    log = Path(tmp_path_factory.mktemp("emulator")) / "uvicorn.log"
    with log.open("wb") as output:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SERVE, str(port), env=env, stdout=output, stderr=output
        )
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:

        async def ready() -> bool:
            try:
                return (await client.get("/.well-known/openid-configuration")).status_code == 200
            except httpx.TransportError:
                return False

        try:
            await eventually(ready, timeout=30)
            yield base_url
        finally:
            server.terminate()
            await server.wait()


@pytest.fixture(scope="session")
async def emulator(emulator_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the emulator's admin and inspection API."""
    async with httpx.AsyncClient(base_url=emulator_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(
        DatabaseSettings(url=migrated_database, pool_size=20), application_name="test-sender"
    )
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def redis(service_env: dict[str, str]) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(service_env["MM_REDIS_URL"])
    yield client
    await client.aclose()


@pytest.fixture
async def fake_auth(emulator_url: str) -> AsyncIterator[FakeAuth]:
    auth = FakeAuth(emulator_url)
    yield auth
    await auth.aclose()


class Harness:
    """Everything one test needs to deliver commands and look at what happened."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        redis: aioredis.Redis,
        redis_prefix: str,
        auth: FakeAuth,
        emulator: httpx.AsyncClient,
        emulator_url: str,
    ) -> None:
        self.sessions = sessions
        self.auth = auth
        self.emulator = emulator
        self.blobs = MemoryBlobs()
        self.clock = FakeClock()
        # The production wire (aiohttp), so transport failures are mapped as in production.
        self.wire = GmailWire(AiohttpTransport(max_connections=20, keepalive_expiry=4.0))
        self.settings = TEST_DELIVERY
        self._redis = redis
        self._redis_prefix = redis_prefix
        self._internal = InternalClient(
            "http://auth.test", caller="sender", token="sender-token", transport=auth.transport()
        )
        self.gmail = HttpGmail(
            GmailSettings(api_url=emulator_url, request_timeout=REQUEST_TIMEOUT),
            transport=self.wire.transport(),
        )
        self.ports = self.configure()

    def configure(self, **overrides: Any) -> Ports:
        """Ports over the harness's fakes; ``overrides`` change delivery settings."""
        self.settings = DeliverySettings(**{**_fields(TEST_DELIVERY), **overrides})
        self.ports = Ports(
            ledger=LedgerWriter(self.sessions, wake_relay=lambda: None),
            gmail=self.gmail,
            tokens=AccessTokens(self._internal, refresh_margin=timedelta(seconds=60), clock=self.clock),
            attachments=Attachments(self.blobs, capacity_bytes=self.settings.attachment_cache_bytes),
            limiter=AccountLimiter(
                self._redis,
                key_prefix=self._redis_prefix,
                per_minute=self.settings.account_sends_per_minute,
            ),
            settings=self.settings,
            request_timeout=REQUEST_TIMEOUT,
            clock=self.clock,
            rng=random.Random(7),
        )
        return self.ports

    async def account(self, *scopes: str, display_name: str | None = None) -> Account:
        account_id = next_id()
        account = Account(
            account_id=account_id,
            user_id=next_id(),
            email=f"sender{account_id}@gmail.test",
            scopes=scopes or (SEND,),
            display_name=display_name,
        )
        return await self.auth.register(account)

    async def deliver(self, command: c.SendEmail, env: c.Envelope | None = None) -> c.Envelope:
        env = env or envelope()
        await deliver(command, env, self.ports)
        return env

    async def events(self, account: Account) -> list[c.Message]:
        """Everything staged about the account's messages, in order."""
        async with transaction(self.sessions) as session:
            rows = (
                await session.execute(
                    select(outbox.c.tag, outbox.c.body)
                    .where(text("convert_from(body, 'UTF8')::jsonb ->> 'account_id' = :account"))
                    .order_by(outbox.c.occurred_at),
                    {"account": str(account.account_id)},
                )
            ).all()
        return [c.decode(tag, body) for tag, body in rows]

    async def row(self, message_id: int) -> Delivery:
        async with transaction(self.sessions) as session:
            found = (
                await session.execute(select(deliveries).where(deliveries.c.message_id == message_id))
            ).one()
        return Delivery(**found._mapping)

    async def copies(self, command: c.SendEmail) -> int:
        answer = await self.emulator.get(
            "/_emulator/messages", params={"rfc822msgid": command.rfc_message_id}
        )
        return len(answer.json()["messages"])

    async def stored(self, command: c.SendEmail) -> dict[str, Any]:
        answer = await self.emulator.get(
            "/_emulator/messages", params={"rfc822msgid": command.rfc_message_id}
        )
        messages: list[dict[str, Any]] = answer.json()["messages"]
        assert len(messages) == 1, f"{len(messages)} copies of {command.rfc_message_id}"
        return messages[0]

    async def fault(self, account: Account, **rule: Any) -> None:
        answer = await self.emulator.post("/_emulator/faults", json={"user": account.email, **rule})
        assert answer.status_code == 201, answer.text

    async def aclose(self) -> None:
        await self.gmail.aclose()
        await self.wire.inner.aclose()
        await self._internal.aclose()


def _fields(settings: DeliverySettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__struct_fields__}


@pytest.fixture
async def harness(
    sessions: async_sessionmaker[AsyncSession],
    redis: aioredis.Redis,
    redis_prefix: str,
    fake_auth: FakeAuth,
    emulator: httpx.AsyncClient,
    emulator_url: str,
) -> AsyncIterator[Harness]:
    built = Harness(
        sessions=sessions,
        redis=redis,
        redis_prefix=redis_prefix,
        auth=fake_auth,
        emulator=emulator,
        emulator_url=emulator_url,
    )
    yield built
    await built.aclose()
