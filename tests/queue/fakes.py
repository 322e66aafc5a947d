"""In-memory stand-ins for the internal routes of templates, storage and auth, at the transport.

They answer exactly the shapes of ``mailmerger_shared.internal_api``; the queue's real clients
talk to them through ``httpx.MockTransport``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec

from mailmerger_shared.internal_api import (
    AttachmentInfo,
    ConnectTicket,
    RenderBatchRequest,
    RenderBatchResponse,
    RenderedRow,
    TemplateVersionInfo,
)

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def render_text(source: str, fields: dict[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda match: str(fields[match.group(1)]), source)


class FakeServices:
    """Templates, storage and auth as far as the queue calls them."""

    def __init__(self) -> None:
        self.templates: dict[tuple[int, int, int], TemplateVersionInfo] = {}
        self.attachments: dict[int, AttachmentInfo] = {}
        self.designated: dict[tuple[int, str], int] = {}
        self.render_calls: list[int] = []  # rows per render-batch call
        self.down: set[str] = set()

    def add_template(
        self,
        user_id: int,
        template_id: int,
        *,
        subject: str,
        html: str,
        text: str | None = None,
        version: int = 1,
    ) -> None:
        variables = sorted(set(_PLACEHOLDER.findall(subject + html + (text or ""))))
        self.templates[(user_id, template_id, version)] = TemplateVersionInfo(
            template_id=template_id,
            version=version,
            subject=subject,
            html=html,
            text=text,
            variables=variables,
        )

    def add_attachment(
        self, user_id: int, attachment_id: int, *, kind: str = "other", size: int | None = None
    ) -> AttachmentInfo:
        info = AttachmentInfo(
            attachment_id=attachment_id,
            user_id=user_id,
            kind=kind,
            object_key=f"u{user_id}/{attachment_id}",
            sha256=f"{attachment_id:064x}",
            filename=f"file-{attachment_id}.pdf",
            content_type="application/pdf",
            size=1000 + attachment_id if size is None else size,
        )
        self.attachments[attachment_id] = info
        if kind in ("resume", "cover_letter"):
            self.designated[(user_id, kind)] = attachment_id
        return info

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        service = parts[1]
        if service in self.down:
            return httpx.Response(503, json={"detail": "down"})
        if (
            request.headers.get("x-service-caller") != "queue"
            or request.headers.get("x-service-token") is None
        ):
            return httpx.Response(401)
        if service == "templates":
            return self._templates(request, parts)
        if service == "storage":
            return self._storage(request, parts)
        if service == "auth" and parts[-1] == "connect-tickets":
            user_id = int(parts[3])
            ticket = ConnectTicket(
                ticket=f"ticket-{user_id}",
                url=f"http://gateway/api/oauth/gmail-authorize?purpose=authorize&ticket=ticket-{user_id}",
                expires_at=datetime.now(UTC) + timedelta(minutes=5),
            )
            return httpx.Response(201, content=msgspec.json.encode(ticket))
        return httpx.Response(404)

    def _templates(self, request: httpx.Request, parts: list[str]) -> httpx.Response:
        if parts[-1] == "render-batch":
            body = msgspec.json.decode(request.content, type=RenderBatchRequest)
            template = self.templates.get((body.user_id, body.template_id, body.version))
            if template is None:
                return httpx.Response(404)
            self.render_calls.append(len(body.rows))
            results = [self._render(template, row) for row in body.rows]
            return httpx.Response(200, content=msgspec.json.encode(RenderBatchResponse(results=results)))
        user_id = int(request.url.params["user_id"])
        template = self.templates.get((user_id, int(parts[3]), int(parts[5])))
        if template is None:
            return httpx.Response(404)
        return httpx.Response(200, content=msgspec.json.encode(template))

    @staticmethod
    def _render(template: TemplateVersionInfo, row: dict[str, Any]) -> RenderedRow:
        missing = [name for name in template.variables if name not in row]
        if missing:
            return RenderedRow(ok=False, error="missing_fields", detail="fields are missing", missing=missing)
        return RenderedRow(
            ok=True,
            subject=render_text(template.subject, row),
            html=render_text(template.html, row),
            text=None if template.text is None else render_text(template.text, row),
        )

    def _storage(self, request: httpx.Request, parts: list[str]) -> httpx.Response:
        if parts[2] == "attachments":
            info = self.attachments.get(int(parts[3]))
            if info is None or info.user_id != int(request.url.params["user_id"]):
                return httpx.Response(404)
            return httpx.Response(200, content=msgspec.json.encode(info))
        attachment_id = self.designated.get((int(parts[3]), parts[5]))
        if attachment_id is None:
            return httpx.Response(404)
        return httpx.Response(200, content=msgspec.json.encode(self.attachments[attachment_id]))
