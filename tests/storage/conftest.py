"""The storage service over HTTP, against this run's PostgreSQL and RabbitMQ and a local S3 (moto).

One app serves the whole package (starting it opens the database, the broker, S3 and a consumer);
each test isolates itself by acting as a user of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import aioboto3
import httpx
import pytest
from aio_pika.abc import AbstractQueue, AbstractRobustConnection
from asgi_lifespan import LifespanManager
from litestar import Litestar
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mailmerger.local_s3 import LocalS3
from mailmerger_shared import contracts as c
from mailmerger_shared.broker import messages_of
from mailmerger_shared.broker.topology import EVENTS_EXCHANGE, QUEUES, declare_exchanges
from mailmerger_shared.settings import load_service
from mailmerger_shared.web.internal import caller_headers
from mailmerger_storage import models
from mailmerger_storage.app import create_app
from mailmerger_storage.settings import MiB, StorageSettings
from mailmerger_storage.worker import USER_DELETED_QUEUE
from tests.conftest import RUN_ID
from tests.support import eventually
from tests.tokens import TestSigner

SIGNER = TestSigner()
BUCKET = f"mm-test-{RUN_ID}"
MAX_UPLOAD = 6 * MiB  # above one 5 MiB part, so an oversized file has started a multipart upload
QUOTA = 12 * MiB
_user_ids = itertools.count(1000)


@pytest.fixture(scope="package")
def local_s3() -> Iterator[LocalS3]:
    with LocalS3() as server:
        yield server


@pytest.fixture(scope="package")
def storage_settings(service_env: dict[str, str], local_s3: LocalS3) -> StorageSettings:
    env = {
        **service_env,
        **local_s3.environment(bucket=BUCKET),
        "MM_S3_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "MM_S3_USER_QUOTA_BYTES": str(QUOTA),
        "MM_S3_PART_SIZE_BYTES": str(5 * MiB),
    }
    return load_service(StorageSettings, env)


@dataclass
class Events:
    """A private queue that receives every ``AttachmentDeleted`` the service publishes."""

    queue: AbstractQueue

    async def attachment_deleted(self, user_id: int, attachment_id: int) -> bool:
        """Wait until this attachment's event arrives (other tests' events may come first)."""
        wanted = c.AttachmentDeleted(user_id=user_id, attachment_id=attachment_id)

        async def arrived() -> bool:
            while (message := await self.queue.get(fail=False)) is not None:
                await message.ack()
                if any(event == wanted for event, _ in messages_of(message)):
                    return True
            return False

        return await eventually(arrived)


@pytest.fixture(scope="package")
async def broker(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    yield connection
    await connection.close()


@pytest.fixture(scope="package")
async def events(broker: AbstractRobustConnection) -> Events:
    # Bound before the app starts, so the relay never finds AttachmentDeleted unroutable; exclusive,
    # so it is gone with the connection and other packages' routing tests see no stray binding.
    channel = await broker.channel()
    exchanges = await declare_exchanges(channel)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchanges[EVENTS_EXCHANGE], routing_key=c.AttachmentDeleted.TAG)
    return Events(queue)


@pytest.fixture(scope="package")
async def fresh_consumer_queue(broker: AbstractRobustConnection) -> None:
    """Tests in a run share the vhost, and the broker kit's tests declare this service's queue with
    a delivery limit of their own: remove it, so the service declares it as it does in production."""
    channel = await broker.channel()
    spec = QUEUES[USER_DELETED_QUEUE]
    await channel.queue_delete(spec.name)
    await channel.queue_delete(spec.dead_letter_queue)
    await channel.close()


@pytest.fixture(scope="package")
async def app(
    storage_settings: StorageSettings, events: Events, fresh_consumer_queue: None
) -> AsyncIterator[Litestar]:
    app = create_app(storage_settings, jwks=SIGNER.jwks)
    async with LifespanManager(app, startup_timeout=30):
        yield app


@pytest.fixture(scope="package")
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://storage") as client:
        yield client


@dataclass
class User:
    """A user of the storage service, with a valid access token."""

    id: int
    headers: dict[str, str]


@pytest.fixture
def user() -> User:
    user_id = next(_user_ids)
    return User(id=user_id, headers=SIGNER.bearer(user_id))


@pytest.fixture
def other_user() -> User:
    user_id = next(_user_ids)
    return User(id=user_id, headers=SIGNER.bearer(user_id))


@pytest.fixture
def internal_headers(storage_settings: StorageSettings) -> dict[str, str]:
    return caller_headers("queue", storage_settings.queue_credential.queue_token)


class Bucket:
    """What is really in the bucket, read with a client of its own."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def keys(self, prefix: str) -> list[str]:
        answer = await self._client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [entry["Key"] for entry in answer.get("Contents", [])]

    async def unfinished_uploads(self, prefix: str) -> list[str]:
        answer = await self._client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
        return [upload["Key"] for upload in answer.get("Uploads", [])]

    async def put(self, key: str, body: bytes) -> None:
        await self._client.put_object(Bucket=BUCKET, Key=key, Body=body)

    async def body(self, key: str) -> bytes:
        answer = await self._client.get_object(Bucket=BUCKET, Key=key)
        async with answer["Body"] as stream:
            data: bytes = await stream.read()
        return data


@pytest.fixture(scope="package")
async def bucket(app: Litestar, local_s3: LocalS3) -> AsyncIterator[Bucket]:
    environment = local_s3.environment()
    session = aioboto3.Session(
        aws_access_key_id=environment["MM_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=environment["MM_S3_SECRET_ACCESS_KEY"],
        region_name=environment["MM_S3_REGION"],
    )
    async with session.client("s3", endpoint_url=local_s3.endpoint_url) as client:
        yield Bucket(client)


class Rows:
    """Counts of a user's rows, read straight from the service's tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def count(self, user_id: int) -> dict[str, int]:
        counts = {}
        async with self._engine.connect() as connection:
            for table in (models.attachments, models.blobs, models.designations):
                query = select(func.count()).select_from(table).where(table.c.user_id == user_id)
                counts[table.name] = int((await connection.execute(query)).scalar_one())
        return counts


@pytest.fixture(scope="package")
async def rows(migrated_database: str) -> AsyncIterator[Rows]:
    engine = create_async_engine(migrated_database)
    yield Rows(engine)
    await engine.dispose()
