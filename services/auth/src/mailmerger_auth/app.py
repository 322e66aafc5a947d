"""Composition root of the auth service. Accounts, tokens, Google sign-in and connected Gmail accounts."""

from __future__ import annotations

from litestar import Litestar

from mailmerger_auth.api import ROUTES
from mailmerger_auth.settings import AuthSettings
from mailmerger_shared.runtime import infrastructure_lifespan
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import JwksFetcher, token_verifier

NAME = "auth"


def create_app(settings: AuthSettings, *, jwks: JwksFetcher | None = None) -> Litestar:
    return service_app(
        name=NAME,
        route_handlers=ROUTES,
        http=settings.http,
        verifier=token_verifier(settings.jwt, jwks),
        lifespan=[
            infrastructure_lifespan(
                NAME, database=settings.database, redis=settings.redis, broker=settings.broker
            )
        ],
    )
