"""Composition root of the queue service. Emails, campaigns, scheduling and quota-aware dispatch.

The HTTP app also consumes the sender's outcomes, the account events and what the sender's
mailbox watcher found (replies, bounces, stored Message-IDs); the dispatcher runs as
its own worker (``worker.run_dispatcher``) so it scales independently of the API.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from litestar import Litestar

from mailmerger_queue.adapters.auth import AuthClient
from mailmerger_queue.adapters.storage import StorageClient
from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.api import routes
from mailmerger_queue.api.deps import dependencies, use_cases_lifespan
from mailmerger_queue.settings import QueueSettings
from mailmerger_queue.worker import account_events, delivery_outcomes, mailbox_events, run_dispatcher
from mailmerger_shared.registration import ServiceRegistration
from mailmerger_shared.runtime import consumer_lifespan, infrastructure_lifespan
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import JwksFetcher, token_verifier
from mailmerger_shared.web.internal import InternalClient

NAME = "queue"


def create_app(
    settings: QueueSettings,
    *,
    jwks: JwksFetcher | None = None,
    internal_transport: httpx.AsyncBaseTransport | None = None,
) -> Litestar:
    """``internal_transport`` replaces the network under the internal client (tests fake it)."""
    return service_app(
        name=NAME,
        route_handlers=routes(settings),
        http=settings.http,
        verifier=token_verifier(settings.jwt, jwks),
        lifespan=[
            infrastructure_lifespan(
                NAME, database=settings.database, redis=settings.redis, broker=settings.broker
            ),
            _internal_clients(settings, internal_transport),
            use_cases_lifespan(settings),
            consumer_lifespan("queue.delivery-outcomes", delivery_outcomes(settings), settings.broker),
            consumer_lifespan("queue.account-events", account_events(settings), settings.broker),
            consumer_lifespan("queue.mailbox-events", mailbox_events(settings), settings.broker),
        ],
        dependencies=dependencies(settings),
    )


def _internal_clients(
    settings: QueueSettings, transport: httpx.AsyncBaseTransport | None
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        token = settings.credential.queue_token

        def client(url: str) -> InternalClient:
            return InternalClient(url, caller=NAME, token=token, transport=transport)

        clients = [
            client(settings.templates_service.templates_url),
            client(settings.storage_service.storage_url),
            client(settings.auth_service.auth_url),
        ]
        app.state.templates = TemplatesClient(clients[0])
        app.state.storage = StorageClient(clients[1])
        app.state.auth = AuthClient(clients[2])
        try:
            yield
        finally:
            for each in clients:
                await each.aclose()

    return lifespan


SERVICE = ServiceRegistration(
    name=NAME,
    settings_type=QueueSettings,
    create_app=create_app,
    public_prefixes=(
        "/v1/emails",
        "/v1/campaigns",
        "/v1/senders",
        "/v1/suppressions",
        "/v1/unsubscribe",
        "/v1/webhooks",
        "/api/email",
        "/api/queue",
        "/schema/queue",
    ),
    workers={"dispatcher": run_dispatcher},
)
