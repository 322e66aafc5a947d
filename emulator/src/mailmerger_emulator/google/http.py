"""Small HTTP helpers shared by the route modules: exact JSON bodies, forms, bearer tokens."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request, Response
from litestar.enums import MediaType
from litestar.exceptions import HTTPException

from mailmerger_emulator.google.errors import GoogleApiError, OAuthError, not_found

log = logging.getLogger("mailmerger_emulator.google")

# Google never lets a token answer be cached.
NO_STORE = {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate", "Pragma": "no-cache"}


def json_response(
    body: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response[bytes]:
    content = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return Response(content=content, status_code=status_code, media_type=MediaType.JSON, headers=headers)


def html_response(page: str, status_code: int = 200) -> Response[str]:
    return Response(content=page, status_code=status_code, media_type=MediaType.HTML)


def redirect(location: str) -> Response[bytes]:
    return Response(content=b"", status_code=302, headers={"Location": location})


def parse_form(text: str) -> dict[str, str]:
    """URL-encoded parameters; the first of repeated names wins."""
    form: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        form.setdefault(name, value)
    return form


def query(request: Request[Any, Any, Any]) -> dict[str, str]:
    return parse_form(request.scope["query_string"].decode("latin-1"))


async def form_body(request: Request[Any, Any, Any]) -> dict[str, str]:
    return parse_form((await request.body()).decode("utf-8", "replace"))


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    """The token of ``Authorization: Bearer …``; "" when the header is there but not a bearer token."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def google_api_error_response(_: Request[Any, Any, Any], error: GoogleApiError) -> Response[bytes]:
    return json_response(error.encode(), error.status_code, error.headers or None)


def oauth_error_response(_: Request[Any, Any, Any], error: OAuthError) -> Response[bytes]:
    return json_response(error.body, error.status_code, NO_STORE)


# Paths under which Google's API front end answers (and so answers unknown routes in its shape).
GOOGLE_API_PREFIXES = ("/gmail/", "/upload/gmail/", "/resumable/upload/gmail/")


def route_not_found_response(request: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
    """No route: under a Gmail path, Google's 404 error body; elsewhere the framework's."""
    if request.url.path.startswith(GOOGLE_API_PREFIXES):
        return google_api_error_response(request, not_found())
    return json_response({"status_code": error.status_code, "detail": error.detail}, error.status_code)


def unexpected_error_response(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    """An emulator bug: logged with its traceback, answered with a plain 500 that no Google error
    body disguises (a fake ``backendError`` would make clients retry a bug forever)."""
    log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=error)
    return json_response({"status_code": 500, "detail": "Internal Server Error"}, 500)
