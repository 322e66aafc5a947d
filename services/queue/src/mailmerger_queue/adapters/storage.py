"""The storage service: attachment metadata by id, and the user's designated resume."""

from __future__ import annotations

from mailmerger_queue.adapters.base import call, decode
from mailmerger_shared.internal_api import AttachmentInfo
from mailmerger_shared.web.internal import InternalClient


class StorageClient:
    def __init__(self, client: InternalClient) -> None:
        self._client = client

    async def attachment(self, user_id: int, attachment_id: int) -> AttachmentInfo | None:
        """The attachment if it exists and belongs to ``user_id``."""
        response = await call(
            self._client,
            "storage",
            "GET",
            f"/internal/storage/attachments/{attachment_id}",
            params={"user_id": user_id},
        )
        return None if response is None else decode(response, "storage", AttachmentInfo)

    async def designated(self, user_id: int, kind: str) -> AttachmentInfo | None:
        """The user's current ``resume`` or ``cover_letter``, if one was uploaded."""
        response = await call(
            self._client, "storage", "GET", f"/internal/storage/users/{user_id}/designated/{kind}"
        )
        return None if response is None else decode(response, "storage", AttachmentInfo)
