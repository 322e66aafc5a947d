"""Dependencies of the templates API, by the names handlers declare them with."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_shared.web.auth import Principal
from mailmerger_shared.web.problems import Conflict
from mailmerger_templates.engine import TemplateEngine
from mailmerger_templates.reads import UserReads
from mailmerger_templates.settings import TemplatesSettings
from mailmerger_templates.writes import CacheNotInvalidated, TemplateWrite, write_transaction

log = logging.getLogger(__name__)


async def provide_write(state: State) -> AsyncIterator[TemplateWrite]:
    """The request's write transaction (instead of the shared ``tx``, which has no after-commit step).

    Committed when the handler returns, rolled back when it raises; the cache is invalidated after
    the commit and before the response is sent.
    """
    try:
        async with write_transaction(state.infra.sessions, state.template_cache) as write:
            yield write
    except IntegrityError as exc:
        raise Conflict("the change conflicts with existing data") from exc
    except CacheNotInvalidated:
        # The change is durable; failing the request would invite a retry that repeats it. The
        # invalidation before the commit already voided every fill but those racing the commit.
        log.exception("committed, but could not invalidate the template cache after it")


def provide_engine(state: State) -> TemplateEngine:
    engine: TemplateEngine = state.template_engine
    return engine


def provide_reads(request: Request[Principal, Any, Any]) -> UserReads:
    """Everything a cached read needs — the user, the sessions, the cache — as a single dependency.

    This is the hot path, so it avoids two costs: Litestar resolves several dependencies of one
    level concurrently, in a task group that costs about as much CPU as the whole cache hit, and
    it hands a dependency asking for ``state`` a fresh copy of it (the request has the original).
    """
    state = request.app.state
    return UserReads(request.user.user_id, state.infra.sessions, state.template_cache)


def provide_sessions(state: State) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = state.infra.sessions
    return sessions


def dependencies(settings: TemplatesSettings) -> dict[str, Provide]:
    """Every dependency of the templates routes, by the names handlers declare them with."""

    def provide_settings() -> TemplatesSettings:
        return settings

    return {
        "settings": Provide(provide_settings, sync_to_thread=False, use_cache=True),
        "write": Provide(provide_write),
        "engine": Provide(provide_engine, sync_to_thread=False),
        "reads": Provide(provide_reads, sync_to_thread=False),
        "sessions": Provide(provide_sessions, sync_to_thread=False),
    }


Write: TypeAlias = NamedDependency[TemplateWrite]
Engine: TypeAlias = NamedDependency[TemplateEngine]
Reads: TypeAlias = NamedDependency[UserReads]
Sessions: TypeAlias = NamedDependency[async_sessionmaker[AsyncSession]]
Settings: TypeAlias = NamedDependency[TemplatesSettings]
