"""Helpers of auth's handlers: the client's address, waking the system post, the caller's session.

What handlers receive by name (``NamedDependency[...]``) besides ``tx`` and ``principal`` is
listed once, in ``app.dependencies``.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Request

from mailmerger_shared.web.auth import Principal

PUBLIC: dict[str, Any] = {"exclude_from_auth": True}


def client_address(request: Request[Any, Any, Any], trusted_proxy_hops: int) -> str:
    """The client's address: the socket peer, or the entry our last trusted proxy appended.

    Entries further left in X-Forwarded-For are written by the client and prove nothing.
    """
    peer = request.client.host if request.client else "unknown"
    if trusted_proxy_hops == 0:
        return peer
    forwarded = [
        part.strip() for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()
    ]
    return forwarded[-trusted_proxy_hops] if len(forwarded) >= trusted_proxy_hops else peer


async def wake_post(request: Request[Any, Any, Any]) -> None:
    """After a response whose transaction queued a letter: deliver it now, not at the next poll."""
    resources = getattr(request.app.state, "resources", None)
    if resources is not None:
        resources.system_post.wake()


def session_id(principal: Principal) -> uuid.UUID | None:
    """The session (refresh-token family) the caller's access token was issued for."""
    try:
        return uuid.UUID(str(principal.claims["sid"]))
    except (KeyError, ValueError):
        return None
