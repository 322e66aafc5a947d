"""A response that is never delivered: the connection dies after the work was done.

ASGI has no "abort" event, so the answer's status line and headers (with the full
Content-Length) are sent and then the app returns without a body. Servers close such a connection
(uvicorn: "ASGI callable returned without completing response"), and the client sees the
connection end mid-answer (httpx: ``RemoteProtocolError``) - never a usable 200 or 500.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.enums import MediaType
from litestar.response.base import ASGIResponse
from litestar.types import Receive, Send


class _HeadersOnly(ASGIResponse):
    async def send_body(self, send: Send, receive: Receive) -> None:
        return None


class DroppedConnection(Response[bytes]):
    def __init__(self, content: bytes) -> None:
        super().__init__(content=content, media_type=MediaType.JSON)

    def to_asgi_response(self, app: Any, request: Request[Any, Any, Any], **_: Any) -> ASGIResponse:
        return _HeadersOnly(body=self.content, media_type=MediaType.JSON, status_code=200)
