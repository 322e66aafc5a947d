"""Composition root of the templates service. Versioned templates and sandboxed rendering."""

from __future__ import annotations

from litestar import Litestar

from mailmerger_shared.runtime import infrastructure_lifespan
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import JwksFetcher, token_verifier
from mailmerger_templates.api import ROUTES
from mailmerger_templates.settings import TemplatesSettings

NAME = "templates"


def create_app(settings: TemplatesSettings, *, jwks: JwksFetcher | None = None) -> Litestar:
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
