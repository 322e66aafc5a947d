"""Uploading an attachment: the request body streams through checks into S3.

The file never exists whole in this process or on its disk. Each chunk off the wire is counted
(``FileTooLarge`` the moment the limit is passed), inspected (``UnsupportedFile`` as soon as the
first bytes contradict the name), hashed, and added to the current part; a full part goes to S3.
Nothing becomes visible in the bucket before every check passed: a file that fits in one part is
sent in one request only at the end, a larger one is a multipart upload completed only at the end
and aborted on any failure.

The database is touched once, at the end, in a transaction that serialises the user's uploads
(advisory lock) so the quota and the dedupe rule hold under concurrency. No connection is held
while bytes stream.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_shared.db import transaction
from mailmerger_shared.object_store import new_object_key
from mailmerger_storage import models
from mailmerger_storage.adapters.blobs import BlobStore
from mailmerger_storage.blob_writer import BlobWriter
from mailmerger_storage.domain import (
    DESIGNATABLE,
    Attachment,
    Kind,
    megabytes,
    sanitise_filename,
)
from mailmerger_storage.errors import EmptyFile, FileTooLarge, IncompleteForm, QuotaExceeded
from mailmerger_storage.filetypes import ContentInspector, FileType
from mailmerger_storage.form import FileOpened, boundary_of, read_form
from mailmerger_storage.service import attachment_by_id, discard_object, serialise_user, set_designation

# Room for boundaries, part headers and the small fields around the file.
FORM_OVERHEAD = 64 * 1024


@dataclass(frozen=True)
class UploadPolicy:
    """What one upload route accepts: its form's field names, kinds, file types and size."""

    file_field: str
    kind_field: str
    kinds: frozenset[Kind]
    default_kind: Kind | None  # None: the form must name the kind
    types: frozenset[FileType]
    max_bytes: int

    def kind_from(self, fields: Mapping[str, str]) -> Kind:
        raw = fields.get(self.kind_field)
        if raw is None and self.default_kind is not None:
            return self.default_kind
        if raw not in self.kinds:
            choices = ", ".join(sorted(self.kinds))
            raise IncompleteForm(f"the form field {self.kind_field!r} must be one of: {choices}")
        return Kind(raw)


@dataclass(frozen=True)
class IncomingBody:
    """A request body as it arrives, with the headers that describe it."""

    chunks: AsyncIterator[bytes]
    content_type: str | None
    content_length: int | None
    # The gateway refused the body as over its size limit and sent the request on without it.
    refused_by_gateway: bool = False


class ReceivedFile:
    """The file part of a form while it streams: counted, inspected, hashed and written."""

    def __init__(
        self, raw_filename: str, policy: UploadPolicy, blobs: BlobStore, key: str, part_size: int
    ) -> None:
        self.filename = sanitise_filename(raw_filename)
        self.size = 0
        self._max_bytes = policy.max_bytes
        self._inspector = ContentInspector(self.filename, policy.types)
        self._sha256 = hashlib.sha256()
        self.writer = BlobWriter(
            blobs, key, part_size=part_size, content_type=self._inspector.expected.content_type
        )

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise too_large(self._max_bytes)
        self._inspector.feed(chunk)
        self._sha256.update(chunk)
        await self.writer.write(chunk)

    def finish(self) -> FileType:
        """The file's type once all of it arrived; refuses an empty or mislabelled file."""
        if self.size == 0:
            raise EmptyFile(f"{self.filename!r} is empty; choose the file again and re-upload it")
        return self._inspector.finish()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


def too_large(max_bytes: int) -> FileTooLarge:
    return FileTooLarge(
        f"the file is larger than the {megabytes(max_bytes)} limit; upload a smaller file",
        extra={"limit_bytes": max_bytes},
    )


async def upload_attachment(
    incoming: IncomingBody,
    user_id: int,
    policy: UploadPolicy,
    *,
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    part_size: int,
    quota_bytes: int,
) -> Attachment:
    """Stream one form's file into S3 and record it as a new attachment of ``user_id``.

    On any refusal or failure nothing remains: no row, no object, no unfinished upload.
    """
    if incoming.refused_by_gateway:
        raise too_large(policy.max_bytes)
    boundary = boundary_of(incoming.content_type)
    body_limit = policy.max_bytes + FORM_OVERHEAD
    if incoming.content_length is not None and incoming.content_length > body_limit:
        raise too_large(policy.max_bytes)  # announced too large: refuse before reading a byte
    key = new_object_key(user_id)
    fields: dict[str, str] = {}
    received: ReceivedFile | None = None
    try:
        events = read_form(_at_most(incoming.chunks, body_limit, policy.max_bytes), boundary)
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, bytes):
                    assert received is not None  # the parser only yields data inside a file part
                    await received.write(event)
                elif isinstance(event, FileOpened):
                    if event.name != policy.file_field or received is not None:
                        raise IncompleteForm(
                            f"send exactly one file, in the form field {policy.file_field!r}"
                        )
                    if not event.filename:  # what a browser sends when no file was chosen
                        raise IncompleteForm("no file was chosen; choose the file, then upload it")
                    received = ReceivedFile(event.filename, policy, blobs, key, part_size)
                else:
                    fields[event.name] = event.value
        if received is None:
            raise IncompleteForm(f"the form has no file; send it in the form field {policy.file_field!r}")
        file_type = received.finish()
        kind = policy.kind_from(fields)
        return await _record(
            sessions,
            blobs,
            received,
            user_id=user_id,
            kind=kind,
            file_type=file_type,
            key=key,
            quota_bytes=quota_bytes,
        )
    except BaseException:
        if received is not None:
            await received.writer.discard()
        raise


async def _at_most(chunks: AsyncIterator[bytes], limit: int, max_bytes: int) -> AsyncIterator[bytes]:
    """The body's chunks, refusing the request once it passes ``limit`` bytes in all."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise too_large(max_bytes)
        yield chunk


async def _record(
    sessions: async_sessionmaker[AsyncSession],
    blobs: BlobStore,
    received: ReceivedFile,
    *,
    user_id: int,
    kind: Kind,
    file_type: FileType,
    key: str,
    quota_bytes: int,
) -> Attachment:
    """Commit the upload: a new blob (and object) unless the user already stores these bytes."""
    stored = False
    try:
        async with transaction(sessions) as session:
            await serialise_user(session, user_id)
            blob_id = await session.scalar(
                select(models.blobs.c.id).where(
                    models.blobs.c.user_id == user_id, models.blobs.c.sha256 == received.sha256
                )
            )
            if blob_id is None:
                await _check_quota(session, user_id, received.size, quota_bytes)
                blob_id = await session.scalar(
                    models.blobs.insert()
                    .values(user_id=user_id, sha256=received.sha256, object_key=key, size=received.size)
                    .returning(models.blobs.c.id)
                )
                await received.writer.commit()
                stored = True
            else:
                await received.writer.discard()  # the user has these bytes already: one object
            attachment_id = await session.scalar(
                models.attachments.insert()
                .values(
                    user_id=user_id,
                    blob_id=blob_id,
                    kind=kind,
                    filename=received.filename,
                    content_type=file_type.content_type,
                )
                .returning(models.attachments.c.id)
            )
            assert attachment_id is not None
            if kind in DESIGNATABLE:
                await set_designation(session, user_id, kind, attachment_id)
            return await attachment_by_id(session, user_id, attachment_id)
    except BaseException:
        if stored:  # the object exists but its row was rolled back
            await discard_object(blobs, key)
        raise


async def _check_quota(session: AsyncSession, user_id: int, size: int, quota_bytes: int) -> None:
    used = await session.scalar(
        select(func.coalesce(func.sum(models.blobs.c.size), 0)).where(models.blobs.c.user_id == user_id)
    )
    used = int(used or 0)
    if used + size > quota_bytes:
        raise QuotaExceeded(
            f"this file ({megabytes(size)}) does not fit in your storage quota: {megabytes(used)} of "
            f"{megabytes(quota_bytes)} used; delete attachments you no longer need, then upload again",
            extra={"quota_bytes": quota_bytes, "used_bytes": used},
        )
