"""HTTP routes of the auth service: each module's ``ROUTES``, mounted here."""

from __future__ import annotations

from litestar import Router
from litestar.types import ControllerRouterHandler

from mailmerger_auth.api import email_pages, google, internal, legacy, v1
from mailmerger_auth.api.deps import PUBLIC
from mailmerger_auth.settings import AuthSettings
from mailmerger_shared.web.auth import requires_caller
from mailmerger_shared.web.legacy import legacy_exception_handlers


def routes(settings: AuthSettings) -> list[ControllerRouterHandler]:
    # A service holds only the credentials of the callers it accepts.
    credentials = {
        "queue": settings.queue_credential.queue_token,
        "sender": settings.sender_credential.sender_token,
    }
    return [
        Router(path="/v1/auth", route_handlers=[*v1.ROUTES, *google.ROUTES], tags=["auth"]),
        *email_pages.ROUTES,
        Router(
            path="/api",
            route_handlers=legacy.ROUTES,
            exception_handlers=legacy_exception_handlers(),
            tags=["legacy"],
        ),
        Router(
            path="/internal/auth",
            route_handlers=[
                Router(
                    "/", route_handlers=handlers, guards=[requires_caller(caller, credentials=credentials)]
                )
                for caller, handlers in internal.ROUTES_BY_CALLER.items()
            ],
            opt=PUBLIC,
            include_in_schema=False,
        ),
    ]
