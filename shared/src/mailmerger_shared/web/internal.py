"""Calling another service's ``/internal/...`` routes.

Services never import each other; when one needs another's data synchronously it calls the
owner's internal route with the service credential, carrying the correlation id along.
"""

from __future__ import annotations

from typing import Any

import httpx

from mailmerger_shared.context import current_correlation_id

SERVICE_TOKEN_HEADER = "X-Service-Token"  # noqa: S105 (a header name, not a secret)


class InternalClient:
    """An httpx client bound to the internal base URL, sending the service credential."""

    def __init__(
        self, base_url: str, service_token: str, *, transport: httpx.AsyncBaseTransport | None = None
    ):
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers={SERVICE_TOKEN_HEADER: service_token},
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
