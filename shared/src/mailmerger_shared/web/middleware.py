"""ASGI middleware shared by every service."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from mailmerger_shared.context import accept_or_new_id, set_correlation_id

REQUEST_ID_HEADER = "x-request-id"


class RequestIdMiddleware(ASGIMiddleware):
    """Carries ``X-Request-ID`` (or a fresh id) as the correlation id of everything the request does."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        incoming = None
        for name, value in scope.get("headers", []):
            if name == REQUEST_ID_HEADER.encode():
                incoming = value.decode("latin-1")
                break
        request_id = accept_or_new_id(incoming)
        set_correlation_id(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        await next_app(scope, receive, send_with_id)
