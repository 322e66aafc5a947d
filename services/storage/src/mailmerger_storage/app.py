"""Composition root of the storage service. Attachments in S3-compatible storage."""

from __future__ import annotations

from litestar import Litestar

from mailmerger_shared.runtime import infrastructure_lifespan
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import JwksFetcher, token_verifier
from mailmerger_storage.api import ROUTES
from mailmerger_storage.settings import StorageSettings

NAME = "storage"


def create_app(settings: StorageSettings, *, jwks: JwksFetcher | None = None) -> Litestar:
    return service_app(
        name=NAME,
        route_handlers=ROUTES,
        http=settings.http,
        verifier=token_verifier(settings.jwt, jwks),
        lifespan=[infrastructure_lifespan(NAME, database=settings.database, broker=settings.broker)],
    )
