"""The attachments bucket: how to reach it, and where in it each object lives.

The storage service writes the bucket and the sender reads it, so both open their client here
(``s3_client``), configured once for every S3-compatible store we run on (AWS, MinIO, Supabase
Storage, moto), and both rely on one object-key layout:

- every object of a user lives under ``user_prefix(user_id)`` (``users/<id>/``), so purging a user
  is one listing;
- each blob's key is ``new_object_key(user_id)``: generated and unguessable, never derived from
  the file's name; ``owner_of(key)`` reads the user back, and is None for any other key.

aioboto3 is imported only when a client is opened: the services that open one declare it.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from mailmerger_shared.settings import ObjectStoreSettings

if TYPE_CHECKING:
    from aiobotocore.config import AioConfig

USERS_PREFIX = "users/"
_KEY = re.compile(r"users/([1-9][0-9]{0,18})/[0-9a-f]{32}")


def user_prefix(user_id: int) -> str:
    """The prefix every object of ``user_id`` lives under (ends with ``/``)."""
    return f"{USERS_PREFIX}{user_id}/"


def new_object_key(user_id: int) -> str:
    """Where a new blob of ``user_id`` is stored: unguessable, under the user's prefix."""
    return f"{user_prefix(user_id)}{uuid.uuid4().hex}"


def owner_of(key: str) -> int | None:
    """The user a blob key belongs to, or None when ``key`` is not one ``new_object_key`` makes."""
    match = _KEY.fullmatch(key)
    return int(match.group(1)) if match else None


def client_config(settings: ObjectStoreSettings) -> AioConfig:
    """How every client talks to the store: SigV4, the configured addressing, bounded retries."""
    from aiobotocore.config import AioConfig

    return AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": settings.addressing_style},
        connect_timeout=5,
        read_timeout=60,
        retries={"mode": "standard", "max_attempts": 3},
        # botocore's default CRC trailers are not understood by every S3-compatible store
        # (older MinIO, Supabase); checksums are added only where an operation requires one.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


@contextlib.asynccontextmanager
async def s3_client(settings: ObjectStoreSettings, *, endpoint_url: str | None = None) -> AsyncIterator[Any]:
    """An aiobotocore S3 client, closed on exit; ``endpoint_url`` overrides the settings' own.

    Opening it does not connect: a store that is down fails the first request, not this.
    """
    import aioboto3

    session = aioboto3.Session(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        region_name=settings.region,
    )
    async with session.client(
        "s3", endpoint_url=endpoint_url or settings.endpoint_url, config=client_config(settings)
    ) as client:
        yield client
