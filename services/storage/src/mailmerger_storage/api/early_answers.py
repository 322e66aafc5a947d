"""Answers given before the request body was read still reach the client.

Uploads are refused early on purpose: a missing token (401), a file announced too large (413), a
wrong type seen in the first bytes (415). The client, though, is still sending. If the server
closes the connection with the body unread, the kernel answers the client's next bytes with a
reset, and a browser that was still uploading reports a network error and never reads the
answer (the old client's upload page then says "Uploading..." forever). So before an answer is
completed, whatever is left of the body is read and thrown away — up to ``MAX_REQUEST_BYTES`` in
all. Past that the answer says ``Connection: close``: a client that sends more than the gateway
itself would let through is not worth the bandwidth. The gateway's ``client_max_body_size`` is
the same number (``mailmerger.gateway``), so behind nginx such a body never reaches the service,
and nginx answers it with the service's own refusal (``GATEWAY_REFUSED_HEADER``).
"""

from __future__ import annotations

from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

MiB = 1024 * 1024
# The largest request body the storage service reads, even to refuse it; nginx's limit too.
MAX_REQUEST_BYTES = 64 * MiB
# Set by the gateway when it refused a body over its ``client_max_body_size`` and asks the
# service for the answer (without the body): the service answers as for a file too large.
GATEWAY_REFUSED_HEADER = "x-mailmerger-body-too-large"


class ReadBodyBeforeAnswering:
    """ASGI wrapper: drains the unread rest of a request body (bounded) before the answer ends."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_REQUEST_BYTES) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        announced = _announced_length(scope)
        if scope["type"] != ScopeType.HTTP or announced == 0:
            await self._app(scope, receive, send)
            return
        body = _Body(receive, announced)
        held: Any = None  # the answer's start, while the body is still coming

        async def answer(message: Any) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and not body.done:
                held = message  # sent with the answer's last part, once the body is read
                return
            if held is not None:
                if not message.get("more_body", False) and not await body.drain(self._max_bytes):
                    held = {**held, "headers": [*held.get("headers", []), (b"connection", b"close")]}
                start, held = held, None
                await send(start)
            await send(message)

        await self._app(scope, body.receive, answer)


class _Body:
    """The request's ``receive``, remembering whether the whole body has arrived."""

    def __init__(self, receive: Receive, announced: int | None) -> None:
        self._receive = receive
        self._announced = announced  # Content-Length; None for a chunked body
        self.done = False
        self.size = 0

    async def receive(self) -> Any:
        message = await self._receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            self.done = not message.get("more_body", False)
        else:  # http.disconnect: nothing more will come
            self.done = True
        return message

    async def drain(self, max_bytes: int) -> bool:
        """Read and drop the rest of the body; whether all of it came within ``max_bytes``."""
        if not self.done and self._announced is not None and self._announced > max_bytes:
            return False  # announced too large: not a byte more is read
        while not self.done and self.size <= max_bytes:
            await self.receive()
        return self.done and self.size <= max_bytes


def _announced_length(scope: Scope) -> int | None:
    """The body's Content-Length; None when it is chunked, 0 when there is none."""
    length = 0
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            length = int(value) if value.isdigit() else 0
    return length
