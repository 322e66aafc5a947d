"""Attachment bytes from object storage, verified against their hash, cached by it.

Invariants:
- No attachment reaches a message unless its bytes hash to the ``sha256`` the command names.
- The cache holds at most ``capacity_bytes`` (counting each entry's base64 body too) and evicts the
  least recently used; one attachment is read once however many sends want it at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from mailmerger_sender.mime import Content
from mailmerger_shared.contracts import AttachmentRef
from mailmerger_shared.object_store import s3_client
from mailmerger_shared.settings import ObjectStoreSettings

# Hashing blocks the event loop for ~2 ms per MiB: larger attachments are hashed in a thread.
_HASH_IN_THREAD_BYTES = 1024 * 1024


class BlobMissing(Exception):
    """Storage has no object under the key."""


class AttachmentMissing(Exception):
    """The attachment no longer exists in storage: the message cannot be sent as composed."""


class AttachmentCorrupt(Exception):
    """The stored bytes do not match the hash the message names."""


class AttachmentUnavailable(Exception):
    """Storage could not be read right now; a later attempt may succeed."""


class BlobStore(Protocol):
    async def read(self, key: str) -> bytes:
        """The object's bytes; ``BlobMissing`` when there is none, anything else is transient."""


class S3Blobs:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    async def read(self, key: str) -> bytes:
        try:
            answer = await self._client.get_object(Bucket=self._bucket, Key=key)
            async with answer["Body"] as stream:
                data: bytes = await stream.read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobMissing(key) from exc
            raise
        return data


@contextlib.asynccontextmanager
async def open_s3(settings: ObjectStoreSettings) -> AsyncIterator[S3Blobs]:
    async with s3_client(settings) as client:
        yield S3Blobs(client, settings.bucket)


class Attachments:
    def __init__(self, blobs: BlobStore, *, capacity_bytes: int) -> None:
        self._blobs = blobs
        self._capacity = capacity_bytes
        self._cache: OrderedDict[str, Content] = OrderedDict()
        self._held = 0
        self._loading: dict[str, asyncio.Task[Content]] = {}

    async def content(self, ref: AttachmentRef) -> Content:
        digest = ref.sha256.lower()
        cached = self._cache.get(digest)
        if cached is not None:
            self._cache.move_to_end(digest)
            return cached
        task = self._loading.get(digest)
        if task is None:
            task = asyncio.create_task(self._load(ref, digest))
            self._loading[digest] = task
            task.add_done_callback(lambda _: self._loading.pop(digest, None))
        # Shielded: one waiter giving up does not cancel the read the others wait for.
        return await asyncio.shield(task)

    async def _load(self, ref: AttachmentRef, digest: str) -> Content:
        try:
            data = await self._blobs.read(ref.object_key)
        except BlobMissing as exc:
            raise AttachmentMissing(f"attachment {ref.attachment_id} ({ref.filename}) is gone") from exc
        except (BotoCoreError, ClientError, OSError) as exc:
            raise AttachmentUnavailable(f"storage: {type(exc).__name__}: {exc}") from exc
        if len(data) > _HASH_IN_THREAD_BYTES:
            actual = (await asyncio.to_thread(hashlib.sha256, data)).hexdigest()
        else:
            actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise AttachmentCorrupt(
                f"attachment {ref.attachment_id} ({ref.filename}) does not match its hash"
            )
        content = Content(data)
        self._remember(digest, content)
        return content

    def _remember(self, digest: str, content: Content) -> None:
        if content.footprint > self._capacity:
            return
        self._cache[digest] = content
        self._held += content.footprint
        while self._held > self._capacity:
            _, evicted = self._cache.popitem(last=False)
            self._held -= evicted.footprint
