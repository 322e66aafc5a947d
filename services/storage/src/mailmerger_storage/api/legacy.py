"""``POST /api/storage/upload-file``: the old web client's upload, over the v1 upload.

The old client reads ``{"success", "status_code", "message", "data"}`` and has no error path for
a non-2xx answer on this page, so a *refused file* (415, 413, 422) is answered HTTP 200 with
``success: false`` and the real code in ``status_code``. Every other error (401, 400, 503…) keeps
its real HTTP status, in the same envelope.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.types import ControllerRouterHandler

from mailmerger_shared.web.deps import CurrentUser
from mailmerger_shared.web.legacy import envelope, legacy_exception_handlers
from mailmerger_shared.web.openapi import documented_body, multipart_form, problems
from mailmerger_storage.api.deps import Attachments, incoming_body
from mailmerger_storage.domain import Kind
from mailmerger_storage.errors import UploadRejected
from mailmerger_storage.filetypes import PDF
from mailmerger_storage.settings import MiB, S3Settings
from mailmerger_storage.uploads import UploadPolicy

# The old client promises its users "PDF, 5 MB or less".
LEGACY_MAX_BYTES = 5 * MiB


def legacy_policy(s3: S3Settings) -> UploadPolicy:
    return UploadPolicy(
        file_field="uploaded_file",
        kind_field="filecontent",
        kinds=frozenset({Kind.RESUME, Kind.COVER_LETTER}),
        default_kind=None,
        types=frozenset({PDF}),
        max_bytes=min(LEGACY_MAX_BYTES, s3.max_upload_bytes),
    )


@post(
    "/api/storage/upload-file",
    status_code=200,
    request_max_body_size=None,  # the upload streams the body and enforces its own limits
    # Every error class the app maps, so none of them falls through to a problem+json body.
    # A refused file (UploadRejected) answers HTTP 200: the old upload page has no error path.
    exception_handlers=legacy_exception_handlers(answered_with_200=(UploadRejected,)),
    tags=["legacy"],
    # A refused file is a 200 (see above); a body that is no form at all keeps its real status.
    responses=problems(400, 413, 415, 422),
    operation_class=documented_body(
        {
            "multipart/form-data": multipart_form(
                file_field="uploaded_file",
                choice_field="filecontent",
                choices=[Kind.RESUME.value, Kind.COVER_LETTER.value],
                choice_required=False,  # its absence is a refused upload: HTTP 200, success false
            )
        }
    ),
)
async def upload_file(
    request: Request[Any, Any, Any],
    principal: CurrentUser,
    attachments: Attachments,
) -> Response[Any]:
    """multipart/form-data: ``uploaded_file`` (a PDF) and ``filecontent`` (resume or cover_letter)."""
    await attachments.upload(incoming_body(request), principal.user_id, legacy_policy)
    return envelope({}, "file uploaded")


ROUTES: list[ControllerRouterHandler] = [upload_file]
