"""The templates service: template versions and batch rendering."""

from __future__ import annotations

from typing import Any

import msgspec

from mailmerger_queue.adapters.base import call, decode
from mailmerger_queue.errors import Invalid
from mailmerger_shared.internal_api import (
    RenderBatchRequest,
    RenderBatchResponse,
    RenderedRow,
    TemplateVersionInfo,
)
from mailmerger_shared.web.internal import InternalClient


class TemplatesClient:
    def __init__(self, client: InternalClient) -> None:
        self._client = client

    async def version(self, user_id: int, template_id: int, version: int) -> TemplateVersionInfo | None:
        response = await call(
            self._client,
            "templates",
            "GET",
            f"/internal/templates/templates/{template_id}/versions/{version}",
            params={"user_id": user_id},
        )
        return None if response is None else decode(response, "templates", TemplateVersionInfo)

    async def render(
        self, user_id: int, template_id: int, version: int, rows: list[dict[str, Any]]
    ) -> list[RenderedRow]:
        """One rendered row per input row, in order; 422 when the template version does not exist."""
        request = RenderBatchRequest(user_id=user_id, template_id=template_id, version=version, rows=rows)
        response = await call(
            self._client,
            "templates",
            "POST",
            "/internal/templates/render-batch",
            content=msgspec.json.encode(request),
            headers={"content-type": "application/json"},
        )
        if response is None:
            raise Invalid(f"template {template_id} has no version {version}")
        results = decode(response, "templates", RenderBatchResponse).results
        if len(results) != len(rows):
            raise Invalid(f"the templates service rendered {len(results)} rows out of {len(rows)}; retry")
        return results
