"""Composition root of the queue service. Emails, campaigns, scheduling and quota-aware dispatch."""

from __future__ import annotations

from litestar import Litestar

from mailmerger_queue.api import ROUTES
from mailmerger_queue.settings import QueueSettings
from mailmerger_shared.runtime import infrastructure_lifespan
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import JwksFetcher, token_verifier

NAME = "queue"


def create_app(settings: QueueSettings, *, jwks: JwksFetcher | None = None) -> Litestar:
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
