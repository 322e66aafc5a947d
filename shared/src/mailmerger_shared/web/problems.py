"""RFC 9457 problem responses for every error a service returns.

Domain code raises the kit's plain errors (``mailmerger_shared.errors``), mapped here to a status
by their kind (``DOMAIN_STATUS``); the HTTP edge (``api/`` modules, the kit's web layer) may raise
``Problem`` with a status of its own. Framework errors (validation, 404, 405…) are converted to the
same shape. An infrastructure outage (database, Redis, broker unreachable) is a 503 naming the
dependency, never a 500.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap
from litestar.utils.scope.state import ScopeState

from mailmerger_shared import errors
from mailmerger_shared.outages import error_chain, unavailable_dependency

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error answered as ``application/problem+json``."""

    status: int = 400
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.extra = extra or {}
        self.headers = headers or {}


class NotFound(Problem):
    status = 404
    title = "Not found"


class Forbidden(Problem):
    status = 403
    title = "Forbidden"


class Conflict(Problem):
    status = 409
    title = "Conflict"


class Unprocessable(Problem):
    status = 422
    title = "Unprocessable content"


class Unauthorized(Problem):
    status = 401
    title = "Unauthorized"


class ServiceUnavailable(Problem):
    status = 503
    title = "Service unavailable"


def problem_response(
    request: Request[Any, Any, Any],
    *,
    status: int,
    title: str,
    detail: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body["instance"] = request.url.path
    if extra:
        body.update(extra)
    return Response(
        content=msgspec.json.encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def _on_problem(request: Request[Any, Any, Any], exc: Problem) -> Response[bytes]:
    return problem_response(
        request, status=exc.status, title=exc.title, detail=exc.detail, extra=exc.extra, headers=exc.headers
    )


# Each domain error kind's status and title: the one place the domain meets HTTP.
DOMAIN_STATUS: dict[type[errors.DomainError], tuple[int, str]] = {
    errors.Malformed: (400, "Bad request"),
    errors.Unauthenticated: (401, "Unauthorized"),
    errors.Refused: (403, "Forbidden"),
    errors.NotFound: (404, "Not found"),
    errors.Conflict: (409, "Conflict"),
    errors.TooLarge: (413, "Content too large"),
    errors.Unsupported: (415, "Unsupported media type"),
    errors.Invalid: (422, "Unprocessable content"),
    errors.TooManyRequests: (429, "Too many requests"),
    errors.UpstreamFailed: (502, "Bad gateway"),
    errors.Unavailable: (503, "Service unavailable"),
    errors.DomainError: (400, "Bad request"),
}


def domain_status(exc: errors.DomainError) -> tuple[int, str]:
    """The status and title of ``exc``: its kind's, the nearest one up its class tree."""
    status, title = next(DOMAIN_STATUS[kind] for kind in type(exc).__mro__ if kind in DOMAIN_STATUS)
    return status, exc.title or title


def _on_domain_error(request: Request[Any, Any, Any], exc: errors.DomainError) -> Response[bytes]:
    status, title = domain_status(exc)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return problem_response(
        request, status=status, title=title, detail=exc.detail, extra=exc.extra, headers=headers
    )


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors = exc.extra if isinstance(exc.extra, list) else []
    return problem_response(
        request,
        status=exc.status_code,
        title="Invalid request",
        detail=exc.detail or "the request does not match the expected shape",
        extra={"errors": errors} if errors else None,
    )


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    return problem_response(
        request,
        status=exc.status_code,
        title=_title(exc.status_code),
        detail=exc.detail,
        headers=dict(exc.headers or {}),
    )


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if any(isinstance(cause, RecursionError) for cause in error_chain(exc)):
        # A body nested deeper than the decoder recurses is the client's doing, not a bug.
        return problem_response(
            request, status=400, title="Bad request", detail="the request body is nested too deeply"
        )
    hostile = _hostile_input(request, exc)
    if hostile is not None:
        return _on_problem(request, hostile)
    dependency = unavailable_dependency(exc)
    if dependency is not None:
        log.warning("dependency unavailable", extra={"dependency": dependency, "error": repr(exc)})
        return problem_response(
            request,
            status=503,
            title="Service unavailable",
            detail=f"{dependency} is unavailable; retry shortly",
            headers={"Retry-After": "5"},
        )
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(
        request, status=500, title="Internal server error", detail="an unexpected error occurred"
    )


def _hostile_input(request: Request[Any, Any, Any], exc: Exception) -> Problem | None:
    """The client's input, not a bug, behind ``exc``: the backstop of ``web.input_guard``.

    The guard names the field for parameters and JSON bodies; input it does not read (a multipart
    form's fields, a body sent without a JSON content type, a template's literal) is caught here,
    where its failure surfaces, so that it is a 4xx saying what to fix rather than a 500.
    """
    from asyncpg.exceptions import CharacterNotInRepertoireError, UntranslatableCharacterError

    for cause in error_chain(exc):
        if isinstance(cause, CharacterNotInRepertoireError | UntranslatableCharacterError):
            # PostgreSQL refuses U+0000 in text and jsonb (and bytes that are not UTF-8).
            return Problem(
                "a text value contains a NUL character (\\u0000 or %00), which cannot be stored as text; "
                "remove it from the request (or from the template that produced it)",
                status=422,
                title="Invalid text",
            )
        if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
            # Python converts at most sys.get_int_max_str_digits() digits between int and str.
            return Problem(
                f"a number in the request has more than {sys.get_int_max_str_digits()} digits; "
                "use a shorter number (or write it as text)",
                status=422,
                title="Number too long",
            )
        if isinstance(cause, UnicodeDecodeError) and not _body_is_utf8(request):
            return Problem(
                "the request body is not UTF-8 text; send it encoded as UTF-8",
                status=400,
                title="Bad request",
            )
    return None


def _body_is_utf8(request: Request[Any, Any, Any]) -> bool:
    """Whether the body the request already read is UTF-8 (True when none was read)."""
    body = ScopeState.from_scope(request.scope).body
    if not isinstance(body, bytes):
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    Problem: _on_problem,
    errors.DomainError: _on_domain_error,
    ValidationException: _on_validation,
    HTTPException: _on_http,
    Exception: _on_unexpected,
}

__all__ = [
    "EXCEPTION_HANDLERS",
    "PROBLEM_JSON",
    "Conflict",
    "NotFound",
    "Problem",
    "ServiceUnavailable",
    "Unauthorized",
    "Unprocessable",
    "domain_status",
    "problem_response",
]
