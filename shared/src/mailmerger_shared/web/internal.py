"""Calling another service's ``/internal/...`` routes.

Services never import each other; when one needs another's data synchronously it calls the
owner's internal route at that service's URL, naming itself and presenting its own credential
(``X-Service-Caller``, ``X-Service-Token``), carrying the correlation id along. The owner's route
names the callers it accepts (``web.auth.requires_caller``).
"""

from __future__ import annotations

from typing import Any

import httpx

from mailmerger_shared.context import current_correlation_id

CALLER_HEADER = "X-Service-Caller"
TOKEN_HEADER = "X-Service-Token"  # noqa: S105 (a header name, not a secret)


def caller_headers(caller: str, token: str) -> dict[str, str]:
    """The headers that identify ``caller`` to an internal route."""
    return {CALLER_HEADER: caller, TOKEN_HEADER: token}


class InternalClient:
    """An httpx client bound to one service's internal URL, presenting the caller's credential."""

    def __init__(
        self,
        base_url: str,
        *,
        caller: str,
        token: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=caller_headers(caller, token),
            timeout=httpx.Timeout(10.0, connect=2.0),
            transport=transport,
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        correlation_id = current_correlation_id()
        if correlation_id:
            headers["X-Request-ID"] = correlation_id
        return await self._client.request(method, path, headers=headers, **kwargs)

    async def aclose(self) -> None:
        await self._client.aclose()
