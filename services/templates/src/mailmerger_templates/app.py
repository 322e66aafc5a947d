"""Composition root of the templates service. Versioned templates and sandboxed rendering."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from litestar import Litestar

from mailmerger_shared.broker.consumer import Handler
from mailmerger_shared.registration import ServiceRegistration
from mailmerger_shared.runtime import Infrastructure, consumer_lifespan, infrastructure_lifespan
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import JwksFetcher, token_verifier
from mailmerger_templates.api import routes
from mailmerger_templates.api.deps import dependencies, use_cases_lifespan
from mailmerger_templates.cache import TemplateCache
from mailmerger_templates.engine import TemplateEngine
from mailmerger_templates.rendering import Renderer
from mailmerger_templates.settings import TemplatesSettings
from mailmerger_templates.worker import purge_deleted_users

NAME = "templates"
USER_DELETED_QUEUE = "templates.user-deleted"


def create_app(settings: TemplatesSettings, *, jwks: JwksFetcher | None = None) -> Litestar:
    engine = TemplateEngine(
        Renderer(),
        threads=settings.templates.engine_threads,
        cache_size=settings.templates.compiled_cache_size,
    )

    def cache_of(infra: Infrastructure) -> TemplateCache:
        assert infra.redis is not None, "the templates service caches in Redis"
        return TemplateCache(
            infra.redis,
            key_prefix=settings.redis.key_prefix,
            ttl_seconds=settings.templates.cache_ttl_seconds,
        )

    @contextlib.asynccontextmanager
    async def cache_lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.template_cache = cache_of(app.state.infra)
        yield

    def user_deleted_handler(infra: Infrastructure) -> Handler:
        assert infra.sessions is not None, "purging needs the database"
        return purge_deleted_users(infra.sessions, cache_of(infra))

    lifespan: list[Callable[[Any], contextlib.AbstractAsyncContextManager[None]]] = [
        infrastructure_lifespan(
            NAME, database=settings.database, redis=settings.redis, broker=settings.broker
        ),
        cache_lifespan,
        use_cases_lifespan(settings),
        consumer_lifespan(USER_DELETED_QUEUE, user_deleted_handler, settings.broker),
    ]
    return service_app(
        name=NAME,
        route_handlers=routes(settings),
        http=settings.http,
        verifier=token_verifier(settings.jwt, jwks),
        lifespan=lifespan,
        dependencies=dependencies(settings),
        state={"template_engine": engine},
    )


SERVICE = ServiceRegistration(
    name=NAME,
    settings_type=TemplatesSettings,
    create_app=create_app,
    public_prefixes=("/v1/templates", "/api/templates", "/schema/templates"),
)
