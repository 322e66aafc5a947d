"""Composition root of the sender service: delivery through the Gmail API.

Its HTTP side serves only probes and metrics; the delivery worker consumes from RabbitMQ.
"""

from __future__ import annotations

from litestar import Litestar

from mailmerger_sender.api import ROUTES
from mailmerger_sender.settings import SenderSettings
from mailmerger_shared.runtime import infrastructure_lifespan
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import JwksFetcher, token_verifier

NAME = "sender"


def create_app(settings: SenderSettings, *, jwks: JwksFetcher | None = None) -> Litestar:
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
