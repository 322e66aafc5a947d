"""The storage service's use cases as the API calls them: one object, built once per app.

It holds what they run on — the sessions, the blob store, the S3 limits — so a handler needs only
the principal, its ``tx`` and this. Reads that need only ``tx`` call :mod:`service` directly.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_storage import service
from mailmerger_storage.adapters.blobs import BlobStore
from mailmerger_storage.domain import Attachment
from mailmerger_storage.settings import S3Settings
from mailmerger_storage.uploads import IncomingBody, UploadPolicy, upload_attachment

# What an upload route accepts, given the service's S3 limits.
PolicyOf = Callable[[S3Settings], UploadPolicy]


class Attachments:
    """Upload, download and delete a user's attachments."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], blobs: BlobStore, s3: S3Settings) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._s3 = s3

    async def upload(self, incoming: IncomingBody, user_id: int, policy: PolicyOf) -> Attachment:
        """Stream the form's file into S3 and record it (its own short transaction, at the end)."""
        return await upload_attachment(
            incoming,
            user_id,
            policy(self._s3),
            sessions=self._sessions,
            blobs=self._blobs,
            part_size=self._s3.part_size_bytes,
            quota_bytes=self._s3.user_quota_bytes,
        )

    async def download_link(
        self, session: AsyncSession, user_id: int, attachment_id: int
    ) -> service.DownloadLink:
        return await service.download_link(
            session, self._blobs, user_id, attachment_id, ttl_seconds=self._s3.presign_ttl_seconds
        )

    async def delete(self, session: AsyncSession, user_id: int, attachment_id: int) -> str | None:
        """Delete in ``session``; the object key to :meth:`discard` once it has committed, if any."""
        return await service.delete_attachment(session, user_id, attachment_id)

    async def discard(self, key: str) -> None:
        """Remove an object no committed row refers to any more (a failure is only logged)."""
        await service.discard_object(self._blobs, key)
