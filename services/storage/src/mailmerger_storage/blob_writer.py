"""Writing one new object through the ``BlobStore``, a part at a time, invisible until committed."""

from __future__ import annotations

import io
import logging

from mailmerger_storage.adapters.blobs import BlobStore

log = logging.getLogger(__name__)


class BlobWriter:
    """Sends one file's bytes to a new object at ``key``, a part at a time.

    Invariants: at most one part (plus the chunk being added) is held in memory; nothing is
    visible at ``key`` until ``commit``; after ``discard`` no part is left behind in S3.
    """

    def __init__(self, blobs: BlobStore, key: str, *, part_size: int, content_type: str) -> None:
        self._blobs = blobs
        self._key = key
        self._part_size = part_size
        self._content_type = content_type
        # A file object, not bytes: the HTTP client then streams it out instead of one huge write.
        self._part = io.BytesIO()
        self._upload_id: str | None = None
        self._etags: list[str] = []

    async def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            room = self._part_size - self._part.tell()
            self._part.write(view[:room])
            view = view[room:]
            if self._part.tell() == self._part_size:
                await self._send_part()

    async def commit(self) -> None:
        """Make the object visible: one PUT for a small file, else the last part and completion."""
        if self._upload_id is None:
            await self._blobs.put(self._key, self._take_part(), content_type=self._content_type)
            return
        if self._part.tell():
            await self._send_part()
        await self._blobs.complete_multipart(self._key, self._upload_id, self._etags)
        self._upload_id = None  # completed: nothing left to abort

    async def discard(self) -> None:
        """Drop what was written; an unfinished multipart upload is aborted.

        Best effort, never raising: it runs while another error is on its way to the client. A
        failed abort is logged; the bucket's ``AbortIncompleteMultipartUpload`` lifecycle rule
        is the backstop for such leftovers.
        """
        self._take_part()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                await self._blobs.abort_multipart(self._key, upload_id)
            except Exception:
                log.exception("could not abort an upload", extra={"key": self._key})

    def _take_part(self) -> io.BytesIO:
        """The current part, rewound, while a fresh buffer takes its place (no copy is made)."""
        part, self._part = self._part, io.BytesIO()
        part.seek(0)
        return part

    async def _send_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = await self._blobs.start_multipart(self._key, content_type=self._content_type)
        number = len(self._etags) + 1
        self._etags.append(
            await self._blobs.upload_part(self._key, self._upload_id, number, self._take_part())
        )
