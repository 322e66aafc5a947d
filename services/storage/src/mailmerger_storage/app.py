"""Composition root of the storage service. Attachments in S3-compatible storage."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar

from mailmerger_shared.registration import ServiceRegistration
from mailmerger_shared.runtime import consumer_lifespan, infrastructure_lifespan, outbox_lifespan
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import JwksFetcher, token_verifier
from mailmerger_shared.web.deps import Lifespan
from mailmerger_storage import models
from mailmerger_storage.adapters.s3 import open_blob_store
from mailmerger_storage.api import routes
from mailmerger_storage.api.deps import dependencies, use_cases_lifespan
from mailmerger_storage.api.early_answers import ReadBodyBeforeAnswering
from mailmerger_storage.settings import S3Settings, StorageSettings
from mailmerger_storage.worker import USER_DELETED_QUEUE, user_deleted_handler

NAME = "storage"


def blob_store_lifespan(settings: S3Settings) -> Lifespan:
    """Open the S3 client into ``app.state.blobs``; readiness then includes "the bucket answers"."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with open_blob_store(settings) as blobs:
            app.state.blobs = blobs
            app.state.readiness["s3"] = blobs.check
            yield

    return lifespan


def purge_lifespan(settings: StorageSettings) -> Lifespan:
    """Consume ``UserDeleted`` with the open blob store (so it comes after ``blob_store_lifespan``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        blobs = app.state.blobs
        consume = consumer_lifespan(
            USER_DELETED_QUEUE, lambda infra: user_deleted_handler(infra, blobs), settings.broker
        )
        async with consume(app):
            yield

    return lifespan


def create_app(settings: StorageSettings, *, jwks: JwksFetcher | None = None) -> Litestar:
    app = service_app(
        name=NAME,
        route_handlers=routes(settings),
        http=settings.http,
        verifier=token_verifier(settings.jwt, jwks),
        lifespan=[
            infrastructure_lifespan(
                NAME, database=settings.database, redis=settings.redis, broker=settings.broker
            ),
            blob_store_lifespan(settings.s3),
            use_cases_lifespan(settings),
            outbox_lifespan(models.outbox),
            purge_lifespan(settings),
        ],
        dependencies=dependencies(settings),
    )
    # Outside everything that may answer early (authentication first), as Litestar adds CORS.
    app.asgi_handler = ReadBodyBeforeAnswering(app.asgi_handler)
    return app


SERVICE = ServiceRegistration(
    name=NAME,
    settings_type=StorageSettings,
    create_app=create_app,
    public_prefixes=("/v1/attachments", "/api/storage", "/schema/storage"),
)
