"""``/internal/storage/...``: attachment lookups for the queue service, its only caller.

Never routed by the gateway; the queue's credential is their only key. Shapes are the shared
``AttachmentInfo`` contract.
"""

from __future__ import annotations

from litestar import Controller, Router, get
from litestar.params import FromPath, FromQuery

from mailmerger_shared.internal_api import AttachmentInfo
from mailmerger_shared.web.auth import requires_caller
from mailmerger_shared.web.deps import Transaction
from mailmerger_storage import service
from mailmerger_storage.domain import Attachment, Kind
from mailmerger_storage.settings import StorageSettings


def attachment_info(attachment: Attachment) -> AttachmentInfo:
    return AttachmentInfo(
        attachment_id=attachment.id,
        user_id=attachment.user_id,
        kind=attachment.kind.value,
        object_key=attachment.object_key,
        sha256=attachment.sha256,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size=attachment.size,
    )


class InternalAttachmentsController(Controller):
    @get("/attachments/{attachment_id:int}")
    async def attachment(
        self, attachment_id: FromPath[int], user_id: FromQuery[int], tx: Transaction
    ) -> AttachmentInfo:
        """One attachment of ``user_id`` (404 when it is not theirs)."""
        return attachment_info(await service.attachment_by_id(tx, user_id, attachment_id))

    @get("/users/{user_id:int}/designated/{kind:str}")
    async def designated(
        self, user_id: FromPath[int], kind: FromPath[Kind], tx: Transaction
    ) -> AttachmentInfo:
        """The user's current resume or cover letter (what ``include_resume`` attaches)."""
        return attachment_info(await service.designated_attachment(tx, user_id, kind))


def internal_router(settings: StorageSettings) -> Router:
    queue_token = settings.queue_credential.queue_token
    return Router(
        path="/internal/storage",
        route_handlers=[InternalAttachmentsController],
        guards=[requires_caller("queue", credentials={"queue": queue_token})],
        opt={"exclude_from_auth": True},
        include_in_schema=False,
    )
