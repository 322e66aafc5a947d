"""The hot reads — a user's list of templates and one template — answered from the cache.

A hit is one Redis round trip whose bytes are the response body; only a miss opens a database
transaction (see cache.py for why a miss can never cache content older than the last write).
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_shared.db import transaction
from mailmerger_shared.web.problems import Problem
from mailmerger_templates import service
from mailmerger_templates.cache import TemplateCache
from mailmerger_templates.domain import InvalidCursor, decode_cursor

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
    after = None
    if cursor is not None:
        try:
            after = decode_cursor(cursor)
        except InvalidCursor:
            raise Problem("the cursor is not one this API returned; pass next_cursor unchanged") from None

    async def produce() -> bytes:
        async with transaction(reads.sessions) as session:
            page = await service.list_templates(
                session, reads.user_id, limit=limit, after=after, search=search
            )
            return _encoder.encode(page)

    if search:
        return await produce()
    return await reads.cache.read(reads.user_id, f"page:{limit}:{after or ''}", produce)


async def template_json(reads: UserReads, template_id: int) -> bytes:
    """:func:`service.get_template` as JSON, through the cache."""

    async def produce() -> bytes:
        async with transaction(reads.sessions) as session:
            return _encoder.encode(await service.get_template(session, reads.user_id, template_id))

    return await reads.cache.read(reads.user_id, f"template:{template_id}", produce)
