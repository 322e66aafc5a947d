"""``/v1/attachments``: upload, list, read, designate, download and delete a user's files."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromQuery, QueryParameter
from litestar.types import ControllerRouterHandler

from mailmerger_shared.web.deps import CurrentUser, ResourceId, Transaction
from mailmerger_shared.web.openapi import documented_body, multipart_form, problems
from mailmerger_storage import service
from mailmerger_storage.api.deps import Attachments, incoming_body
from mailmerger_storage.domain import Attachment, Kind
from mailmerger_storage.filetypes import ALL_TYPES
from mailmerger_storage.settings import S3Settings
from mailmerger_storage.uploads import UploadPolicy

AttachmentId = ResourceId
# The upload streams the form itself, so Litestar cannot see it: documented here.
UPLOAD_FORM = documented_body(
    {
        "multipart/form-data": multipart_form(
            file_field="file", choice_field="kind", choices=[k.value for k in Kind], choice_required=False
        )
    }
)


class AttachmentRead(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    kind: Kind
    filename: str
    content_type: str
    size: int
    sha256: str
    designated: bool
    created_at: datetime

    @classmethod
    def of(cls, attachment: Attachment) -> AttachmentRead:
        return cls(
            id=attachment.id,
            kind=attachment.kind,
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=attachment.size,
            sha256=attachment.sha256,
            designated=attachment.designated,
            created_at=attachment.created_at,
        )


class AttachmentPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[AttachmentRead]
    next_cursor: str | None


def upload_policy(s3: S3Settings) -> UploadPolicy:
    return UploadPolicy(
        file_field="file",
        kind_field="kind",
        kinds=frozenset(Kind),
        default_kind=Kind.OTHER,
        types=ALL_TYPES,
        max_bytes=s3.max_upload_bytes,
    )


class AttachmentsController(Controller):
    path = "/v1/attachments"
    tags = ["attachments"]

    # The body is read as a stream by the upload itself, which enforces its own limits.
    @post(
        "/",
        status_code=201,
        request_max_body_size=None,
        responses=problems(400, 413, 415, 422),
        operation_class=UPLOAD_FORM,
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        principal: CurrentUser,
        attachments: Attachments,
    ) -> Response[AttachmentRead]:
        """Upload one file as multipart/form-data: ``file``, and ``kind`` (resume, cover_letter, other).

        A new resume or cover letter becomes the designated one. Uploading bytes you already
        stored creates a new attachment sharing the stored copy (and costs no quota).
        """
        attachment = await attachments.upload(incoming_body(request), principal.user_id, upload_policy)
        return Response(
            AttachmentRead.of(attachment),
            status_code=201,
            headers={"Location": f"{self.path}/{attachment.id}"},
        )

    @get("/")
    async def list_attachments(
        self,
        principal: CurrentUser,
        tx: Transaction,
        kind: FromQuery[Kind | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
    ) -> AttachmentPage:
        """Your attachments, newest first; pass ``next_cursor`` back as ``cursor`` for more."""
        page = await service.list_attachments(tx, principal.user_id, kind=kind, cursor=cursor, limit=limit)
        return AttachmentPage(items=[AttachmentRead.of(a) for a in page.items], next_cursor=page.next_cursor)

    @get("/{attachment_id:int}")
    async def read(
        self, attachment_id: AttachmentId, principal: CurrentUser, tx: Transaction
    ) -> AttachmentRead:
        return AttachmentRead.of(await service.attachment_by_id(tx, principal.user_id, attachment_id))

    @post("/{attachment_id:int}/designate", status_code=200, responses=problems(409, 422))
    async def designate(
        self, attachment_id: AttachmentId, principal: CurrentUser, tx: Transaction
    ) -> AttachmentRead:
        """Make this resume (or cover letter) the one sent when an email includes your resume."""
        return AttachmentRead.of(await service.designate(tx, principal.user_id, attachment_id))

    @get("/{attachment_id:int}/download")
    async def download(
        self,
        attachment_id: AttachmentId,
        principal: CurrentUser,
        tx: Transaction,
        attachments: Attachments,
    ) -> service.DownloadLink:
        """A short-lived URL that downloads the file under its name (``Content-Disposition: attachment``)."""
        return await attachments.download_link(tx, principal.user_id, attachment_id)

    @delete("/{attachment_id:int}", status_code=204)
    async def remove(
        self, attachment_id: AttachmentId, principal: CurrentUser, tx: Transaction, attachments: Attachments
    ) -> Response[None]:
        orphan = await attachments.delete(tx, principal.user_id, attachment_id)
        # The request's transaction commits before the response is sent, and background tasks
        # run after it: the object is removed only once no committed row can point at it.
        cleanup = BackgroundTask(attachments.discard, orphan) if orphan is not None else None
        return Response(None, status_code=204, background=cleanup)


ROUTES: list[ControllerRouterHandler] = [AttachmentsController]
