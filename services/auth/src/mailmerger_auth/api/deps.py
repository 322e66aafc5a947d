"""What auth's handlers are given, and their helpers: the client's address, waking the system post,
the caller's session.

What handlers receive by name (``NamedDependency[...]``) besides ``tx`` and ``principal`` is listed
once, in ``dependencies``: the settings, the fields of ``resources.Resources``, ``now`` and
``client_address``.
"""

from __future__ import annotations

import uuid
from dataclasses import fields
from datetime import datetime
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from mailmerger_auth.domain import Clock
from mailmerger_auth.resources import Resources
from mailmerger_auth.settings import AuthSettings
from mailmerger_shared.web.auth import Principal

PUBLIC: dict[str, Any] = {"exclude_from_auth": True}


def dependencies(settings: AuthSettings, *, clock: Clock) -> dict[str, Provide]:
    """Every dependency of the auth routes, by the names handlers declare them with: ``settings``,
    the fields of ``Resources`` (built by ``resources_lifespan``), the time every rule reads
    (``now``), and the client's address (``client_address``)."""
    trusted_proxy_hops = settings.auth.trusted_proxy_hops

    def provide_settings() -> AuthSettings:
        return settings

    def resource(name: str) -> Provide:
        def provide(state: State) -> Any:
            return getattr(state.resources, name)

        return Provide(provide, sync_to_thread=False)

    def provide_now() -> datetime:
        return clock()

    def provide_client_address(request: Request[Any, Any, Any]) -> str:
        return client_address(request, trusted_proxy_hops)

    return {
        "settings": Provide(provide_settings, sync_to_thread=False, use_cache=True),
        **{field.name: resource(field.name) for field in fields(Resources)},
        "now": Provide(provide_now, sync_to_thread=False),
        "client_address": Provide(provide_client_address, sync_to_thread=False),
    }


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
