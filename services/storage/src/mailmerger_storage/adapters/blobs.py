"""The port to object storage: what the service needs from S3, and nothing more."""

from __future__ import annotations

from typing import BinaryIO, Protocol, runtime_checkable


# Runtime-checkable because Litestar validates injected dependencies against their annotation.
@runtime_checkable
class BlobStore(Protocol):
    """Objects in one bucket, addressed by keys the service generates.

    A body handed to ``put`` or ``upload_part`` is a rewound, seekable file of at most one part
    (``S3Settings.part_size_bytes``), so memory per upload is bounded by the part size whatever
    the file's size, and a retried request can read the body again.
    """

    async def put(self, key: str, body: BinaryIO, *, content_type: str) -> None:
        """Store a whole object in one request."""

    async def start_multipart(self, key: str, *, content_type: str) -> str:
        """Begin a multipart upload; returns its upload id."""

    async def upload_part(self, key: str, upload_id: str, number: int, body: BinaryIO) -> str:
        """Send part ``number`` (from 1); returns its ETag for ``complete_multipart``."""

    async def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        """Make the parts, in order, one object; until then nothing is visible at ``key``."""

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Discard an unfinished upload and the parts already sent."""

    async def delete(self, key: str) -> None:
        """Remove an object; removing a missing one is not an error."""

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every object and unfinished upload under ``prefix``; returns the objects removed."""

    async def download_url(self, key: str, *, disposition: str, content_type: str, ttl_seconds: int) -> str:
        """A presigned GET that answers with these ``Content-Disposition``/``Content-Type`` headers."""

    async def check(self) -> None:
        """Raise unless the bucket answers, creating it when missing (the readiness probe)."""
