"""The hot reads — a user's list of templates, one template, and the legacy client's list of them
all (which it loads on every page) — answered from the cache.

A hit is one Redis round trip whose bytes are the response body; only a miss opens a database
transaction (see cache.py for why a miss can never cache content older than the last write).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_shared.db import transaction
from mailmerger_shared.pagination import decode_cursor
from mailmerger_templates import service
from mailmerger_templates.cache import TemplateCache
from mailmerger_templates.domain import CURSOR_KIND

_encoder = msgspec.json.Encoder()


class UserReads(NamedTuple):
    """Whose templates a request reads, and where from: the cache, then the database."""

    user_id: int
    sessions: async_sessionmaker[AsyncSession]
    cache: TemplateCache


async def template_page_json(
    reads: UserReads, *, limit: int, cursor: str | None, search: str | None
) -> bytes:
    """:func:`service.list_templates` as JSON; pages without a search go through the cache.

    Searches are not cached: their number is unbounded, and each is usually typed once.
    """
    after = decode_cursor(CURSOR_KIND, cursor) if cursor is not None else None

    async def produce(session: AsyncSession) -> bytes:
        page = await service.list_templates(session, reads.user_id, limit=limit, after=after, search=search)
        return _encoder.encode(page)

    if search:
        async with transaction(reads.sessions) as session:
            return await produce(session)
    return await cached_json(reads, f"page:{limit}:{after or ''}", produce)


async def template_json(reads: UserReads, template_id: int) -> bytes:
    """:func:`service.get_template` as JSON, through the cache."""

    async def produce(session: AsyncSession) -> bytes:
        return _encoder.encode(await service.get_template(session, reads.user_id, template_id))

    return await cached_json(reads, f"template:{template_id}", produce)


async def cached_json(
    reads: UserReads, field: str, produce: Callable[[AsyncSession], Awaitable[bytes]]
) -> bytes:
    """The body ``field`` of the user's cache, or ``produce`` run in a read transaction (then cached).

    For reads of the user's own templates that any write invalidates (the whole hash goes); the
    bytes must not depend on anything but the user's committed templates.
    """

    async def from_database() -> bytes:
        async with transaction(reads.sessions) as session:
            return await produce(session)

    return await reads.cache.read(reads.user_id, field, from_database)
