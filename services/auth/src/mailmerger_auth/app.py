"""Composition root of the auth service. Accounts, tokens, Google sign-in and connected Gmail accounts."""

from __future__ import annotations

import httpx
from litestar import Litestar

from mailmerger_auth import models
from mailmerger_auth.api import routes
from mailmerger_auth.api.deps import dependencies
from mailmerger_auth.domain import Clock, utc_now
from mailmerger_auth.resources import Keyring, resources_lifespan
from mailmerger_auth.settings import AuthSettings
from mailmerger_shared.registration import ServiceRegistration
from mailmerger_shared.runtime import infrastructure_lifespan, outbox_lifespan
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import token_verifier

NAME = "auth"


def create_app(
    settings: AuthSettings,
    *,
    google_transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = utc_now,
) -> Litestar:
    """``google_transport`` carries the calls to Google, the system's Gmail account's included
    (tests give the emulator's); ``clock`` is the time every rule reads (tests move it)."""
    keyring = Keyring.from_settings(settings, clock)  # auth verifies the tokens it signs itself
    return service_app(
        name=NAME,
        route_handlers=routes(settings),
        http=settings.http,
        verifier=token_verifier(settings.jwt, keyring.keys.published_jwks),
        lifespan=[
            infrastructure_lifespan(
                NAME, database=settings.database, redis=settings.redis, broker=settings.broker
            ),
            outbox_lifespan(models.outbox),
            resources_lifespan(settings, keyring=keyring, clock=clock, google_transport=google_transport),
        ],
        dependencies=dependencies(settings, clock=clock),
    )


SERVICE = ServiceRegistration(
    name=NAME,
    settings_type=AuthSettings,
    create_app=create_app,
    public_prefixes=("/v1/auth", "/api/auth", "/api/oauth", "/schema/auth"),
)
