"""One guard, in front of every route, against text no service can decode or store.

PostgreSQL's ``text`` and ``jsonb`` cannot hold U+0000, so a NUL that reached a query was a 500;
a JSON body that is not UTF-8 made the decoder raise a ``UnicodeDecodeError``, another 500. The
guard refuses both where they enter, naming the place, before any handler, dependency or guard
runs: a NUL in a path parameter or a query parameter (400), a JSON body that is not UTF-8 (400),
a NUL anywhere in a JSON body's strings or keys (422, with the field's JSON path).

It reads a JSON body only (Litestar keeps what it read for the handler); uploads and CSV streams
pass untouched: the queue's CSV reader checks its cells row by row, and whatever else brings a NUL
to the database meets the backstop in ``problems.py`` (422 naming the character, not the field).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from mailmerger_shared.web.problems import Problem

NUL = "\x00"
_ESCAPED_NUL = b"\\u0000"  # the only way a NUL can be written in JSON (a raw one is malformed)
_CONTENT_TYPE = b"content-type"
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


class HostileInput(Problem):
    """Input that cannot be taken as text; ``extra`` names where it is (``source``, ``field``)."""

    title = "Invalid text"


class InputGuard:
    """ASGI middleware: refuses NULs in parameters and JSON bodies, and JSON that is not UTF-8."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            _check_path(scope)
            _check_query(scope["query_string"])
            if scope["method"] not in _NO_BODY and _is_json(scope):
                _check_json(await Request[Any, Any, Any](scope, receive).body())
        await self.app(scope, receive, send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == _CONTENT_TYPE:
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


def _check_path(scope: Scope) -> None:
    if NUL not in scope["path"]:
        return
    name = next((name for name, value in scope.get("path_params", {}).items() if NUL in str(value)), None)
    where = f"the path parameter {name!r}" if name else "the path"
    raise HostileInput(
        f"{where} contains a NUL character (%00), which is not text; remove it",
        status=400,
        extra={"source": "path", "field": name},
    )


def _check_query(query: bytes) -> None:
    if b"%00" not in query and b"\x00" not in query:
        return
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if NUL in name or NUL in value:
            shown = name.replace(NUL, "%00")
            raise HostileInput(
                f"the query parameter {shown!r} contains a NUL character (%00), which is not text; remove it",
                status=400,
                extra={"source": "query", "field": shown},
            )


def _check_json(body: bytes) -> None:
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HostileInput(
                f"the JSON body is not UTF-8 text (byte {exc.start} cannot start or continue a "
                "character); send it encoded as UTF-8",
                status=400,
                extra={"source": "body"},
            ) from None
    if _ESCAPED_NUL not in body:
        return
    try:
        document = msgspec.json.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return  # malformed: the handler's decoding says how
    field = nul_path(document)
    if field is not None:
        raise HostileInput(
            f"{field} contains a NUL character (\\u0000), which is not text; remove it",
            status=422,
            extra={"source": "body", "field": field},
        )


def nul_path(document: object, root: str = "$") -> str | None:
    """The JSON path of the first string (value or key) in ``document`` holding a NUL, if any.

    Iterative, so a deeply nested document costs no recursion.
    """
    pending: list[tuple[str, object]] = [(root, document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if NUL in value:
                return path
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                member = _member(path, key)
                if NUL in key:
                    return f"{member} (its name)"
                pending.append((member, item))
        elif isinstance(value, list):
            pending.extend((f"{path}[{index}]", item) for index, item in reversed(list(enumerate(value))))
    return None


def _member(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


__all__ = ["HostileInput", "InputGuard", "nul_path"]
