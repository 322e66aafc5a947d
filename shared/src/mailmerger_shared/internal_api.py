"""Shapes of the ``/internal/...`` HTTP routes services call on each other.

These are contracts like the messages in ``contracts``: the owner serves them, the caller decodes
them with the same Struct, and neither imports the other. Paths are listed with each shape, and
the one service allowed to call each (``web.auth.requires_caller``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Internal(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """Base of internal payloads (unknown fields are tolerated for rolling upgrades)."""


# --- storage (caller: queue) ----------------------------------------------------------------
# GET /internal/storage/attachments/{attachment_id}?user_id={user_id}        -> AttachmentInfo | 404
# GET /internal/storage/users/{user_id}/designated/{kind}  (resume|cover_letter) -> AttachmentInfo | 404


class AttachmentInfo(Internal, frozen=True, kw_only=True):
    attachment_id: int
    user_id: int
    kind: str
    object_key: str
    sha256: str
    filename: str
    content_type: str
    size: int


# --- templates (caller: queue) --------------------------------------------------------------
# GET  /internal/templates/templates/{template_id}/versions/{version}?user_id={user_id}
#      -> TemplateVersionInfo | 404
# POST /internal/templates/render-batch   RenderBatchRequest -> RenderBatchResponse


class TemplateVersionInfo(Internal, frozen=True, kw_only=True):
    template_id: int
    version: int
    subject: str
    html: str
    text: str | None = None
    variables: list[str] = []


class RenderBatchRequest(Internal, frozen=True, kw_only=True):
    user_id: int
    template_id: int
    version: int
    rows: list[dict[str, Any]]


class RenderedRow(Internal, frozen=True, kw_only=True):
    ok: bool
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    error: str | None = None  # "missing_fields" | "refused" | "limit_exceeded" | "render_failed"
    detail: str | None = None
    missing: list[str] = []


class RenderBatchResponse(Internal, frozen=True, kw_only=True):
    results: list[RenderedRow]


# --- auth -----------------------------------------------------------------------------------
# POST /internal/auth/gmail-accounts/{account_id}/access-token [AccessTokenRequest] -> GmailAccessToken
#      (caller: sender)
#      409 problem with "reason": "reconnect_required" when Google refused the refresh token
# POST /internal/auth/users/{user_id}/connect-tickets          -> ConnectTicket  (caller: queue)


class AccessTokenRequest(Internal, frozen=True, kw_only=True):
    """Optional body: ``refused`` is a token Gmail just answered 401 to. If it is still the one auth
    holds, auth refreshes instead of handing it out again until it expires."""

    refused: str | None = None


class GmailAccessToken(Internal, frozen=True, kw_only=True):
    account_id: int
    user_id: int
    email: str
    display_name: str | None = None
    access_token: str
    expires_at: datetime
    scopes: list[str]


class GmailAccountInfo(Internal, frozen=True, kw_only=True):
    account_id: int
    user_id: int
    email: str
    display_name: str | None = None
    scopes: list[str]
    state: str  # "connected" | "reconnect_required" | "disconnected"


class ConnectTicket(Internal, frozen=True, kw_only=True):
    """A short-lived, single-use ticket; ``url`` starts the Gmail connect flow for its user."""

    ticket: str
    url: str
    expires_at: datetime
