"""The existing web client's response envelope: ``{"success", "status_code", "message", "data"}``.

Legacy routes are thin adapters over the v1 code. Their errors come from the same problem
handlers as every other route, re-dressed as the envelope with the real HTTP status, so the old
client reads ``message`` where v1 clients read a problem's ``detail``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.types import ExceptionHandlersMap

from mailmerger_shared.web.problems import EXCEPTION_HANDLERS

_PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


def envelope(
    data: Any,
    message: str,
    *,
    status: int = 200,
    success: bool | None = None,
    headers: dict[str, str] | None = None,
    cookies: Sequence[Cookie] | None = None,
) -> Response[Any]:
    """An envelope answered with ``status``; ``success`` follows the status unless given."""
    body = {
        "success": status < 400 if success is None else success,
        "status_code": status,
        "message": message,
        "data": data,
    }
    return Response(body, status_code=status, headers=headers, cookies=list(cookies or []))


def legacy_exception_handlers(*, answered_with_200: tuple[type[Exception], ...] = ()) -> ExceptionHandlersMap:
    """Handlers for every error kind the apps map, answering in the envelope.

    ``answered_with_200`` lists errors the old client can only show when they arrive as HTTP 200
    (its upload page has no error path); their real code still goes in ``status_code``.
    """

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        problem_handler = next(EXCEPTION_HANDLERS[k] for k in type(exc).__mro__ if k in EXCEPTION_HANDLERS)
        problem = problem_handler(request, exc)
        body: dict[str, Any] = msgspec.json.decode(problem.content) if problem.content else {}
        status = problem.status_code or 500
        message = str(body.get("detail", ""))
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            # The old client shows only ``message``: say there what to fix.
            message += ": " + "; ".join(
                str(e.get("message", e) if isinstance(e, dict) else e) for e in errors
            )
        data = {key: value for key, value in body.items() if key not in _PROBLEM_MEMBERS}
        response = envelope(data, message, status=status, success=False, headers=dict(problem.headers))
        if isinstance(exc, answered_with_200):
            response.status_code = 200
        return response

    return dict.fromkeys(EXCEPTION_HANDLERS, handle)
