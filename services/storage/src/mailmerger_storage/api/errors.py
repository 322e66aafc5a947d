"""The storage errors the kit's web layer cannot answer alone, answered at the edge.

Every kind of ``mailmerger_shared.errors`` becomes a problem response in the web kit; the one kind
the storage service adds, ``UnsupportedMediaType``, becomes a 415 here, in both answer shapes.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.types import ExceptionHandlersMap

from mailmerger_shared.web.legacy import legacy_exception_handlers
from mailmerger_shared.web.problems import Problem, problem_response
from mailmerger_storage.errors import UnsupportedMediaType, UploadRejected

UNSUPPORTED_MEDIA_TYPE = 415


def _on_unsupported(request: Request[Any, Any, Any], exc: UnsupportedMediaType) -> Response[bytes]:
    return problem_response(
        request,
        status=UNSUPPORTED_MEDIA_TYPE,
        title=exc.title or UnsupportedMediaType.default_title or "",
        detail=exc.detail,
        extra=exc.extra,
    )


# For the routes answering problem+json (the kit's own handlers answer every other kind).
EXCEPTION_HANDLERS: ExceptionHandlersMap = {UnsupportedMediaType: _on_unsupported}


def legacy_handlers() -> ExceptionHandlersMap:
    """Every error in the old client's envelope; a refused file (``UploadRejected``) as HTTP 200."""
    handlers = legacy_exception_handlers(answered_with_200=(UploadRejected,))
    in_envelope = handlers[Problem]

    def on_unsupported(request: Request[Any, Any, Any], exc: UnsupportedMediaType) -> Response[Any]:
        problem = Problem(exc.detail, status=UNSUPPORTED_MEDIA_TYPE, title=exc.title or "", extra=exc.extra)
        response = in_envelope(request, problem)
        if isinstance(exc, UploadRejected):
            response.status_code = 200
        return response

    return {**handlers, UnsupportedMediaType: on_unsupported}
