"""The templates service's use cases as the API calls them: one object, built once per app.

It holds what the use cases run on — the sessions, the compiled-template engine, the read cache —
so a handler needs only the principal, its body and this. Writes each run in their own
:func:`~mailmerger_templates.writes.write_transaction` (committed before the handler returns, so
before the response is sent; the owner's cached reads invalidated after the commit). Reads that
need only the request's ``tx`` call :mod:`service` directly.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_shared.errors import Conflict
from mailmerger_shared.internal_api import RenderBatchRequest, RenderBatchResponse
from mailmerger_templates import merge, reads, service
from mailmerger_templates.cache import TemplateCache
from mailmerger_templates.domain import TemplateContent
from mailmerger_templates.engine import TemplateEngine
from mailmerger_templates.rendering import TemplateSource
from mailmerger_templates.schemas import Preview, SourceCheck, TemplateRead, TemplateUpdate
from mailmerger_templates.writes import CacheNotInvalidated, TemplateWrite, write_transaction

log = logging.getLogger(__name__)


class Templates:
    """Create, change, delete, read and render a user's templates."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        engine: TemplateEngine,
        cache: TemplateCache,
        *,
        max_batch_rows: int,
    ) -> None:
        self._sessions = sessions
        self._engine = engine
        self._cache = cache
        self._max_batch_rows = max_batch_rows

    # --- writes --------------------------------------------------------------------------------

    async def create(self, user_id: int, content: TemplateContent) -> TemplateRead:
        async with self._write() as write:
            return await service.create_template(write, self._engine, user_id, content)

    async def create_legacy(self, user_id: int, t_body: str, t_key: str) -> int:
        async with self._write() as write:
            return await service.create_legacy_template(write, self._engine, user_id, t_body, t_key)

    async def update(self, user_id: int, template_id: int, changes: TemplateUpdate) -> TemplateRead:
        async with self._write() as write:
            return await service.update_template(write, self._engine, user_id, template_id, changes)

    async def update_legacy(self, user_id: int, template_id: int, t_body: str, t_key: str) -> None:
        async with self._write() as write:
            await service.update_legacy_template(write, self._engine, user_id, template_id, t_body, t_key)

    async def delete(self, user_id: int, template_id: int) -> None:
        async with self._write() as write:
            await service.delete_template(write, user_id, template_id)

    async def delete_many(self, user_id: int, template_ids: Sequence[int]) -> list[int]:
        async with self._write() as write:
            return await service.delete_templates(write, user_id, template_ids)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[TemplateWrite]:
        try:
            async with write_transaction(self._sessions, self._cache) as write:
                yield write
        except IntegrityError as exc:
            raise Conflict("the change conflicts with existing data") from exc
        except CacheNotInvalidated:
            # The change is durable; failing the request would invite a retry that repeats it. The
            # invalidation before the commit already voided every fill but those racing the commit.
            log.exception("committed, but could not invalidate the template cache after it")

    # --- cached reads: the response bodies themselves --------------------------------------------

    async def page_json(self, user_id: int, *, limit: int, cursor: str | None, search: str | None) -> bytes:
        return await reads.template_page_json(self._reads(user_id), limit=limit, cursor=cursor, search=search)

    async def template_json(self, user_id: int, template_id: int) -> bytes:
        return await reads.template_json(self._reads(user_id), template_id)

    async def cached_json(
        self, user_id: int, field: str, produce: Callable[[AsyncSession], Awaitable[bytes]]
    ) -> bytes:
        return await reads.cached_json(self._reads(user_id), field, produce)

    def _reads(self, user_id: int) -> reads.UserReads:
        return reads.UserReads(user_id, self._sessions, self._cache)

    # --- the merge -----------------------------------------------------------------------------

    async def check_source(self, source: TemplateSource) -> SourceCheck:
        return await merge.check_source(self._engine, source)

    async def preview(self, user_id: int, template_id: int, fields: Mapping[str, Any]) -> Preview:
        return await merge.preview(self._sessions, self._engine, user_id, template_id, fields)

    async def render_batch(self, request: RenderBatchRequest) -> RenderBatchResponse:
        return await merge.render_batch(self._sessions, self._engine, request, max_rows=self._max_batch_rows)
