"""HTTP routes of the auth service."""

from __future__ import annotations

from litestar import Router
from litestar.types import ControllerRouterHandler

from mailmerger_auth.api import email_pages, google, v1
from mailmerger_auth.api.internal import internal_router
from mailmerger_auth.api.legacy import legacy_router
from mailmerger_auth.settings import AuthSettings


def routes(settings: AuthSettings) -> list[ControllerRouterHandler]:
    return [
        Router(path="/v1/auth", route_handlers=[*v1.ROUTES, *google.ROUTES], tags=["auth"]),
        *email_pages.ROUTES,
        legacy_router(),
        internal_router(settings),
    ]
