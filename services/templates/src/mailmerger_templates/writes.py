"""The one way templates change: a transaction that keeps the owners' cached reads coherent.

A write declares each owner whose templates it changes (:meth:`TemplateWrite.changing`) before
changing them. The owner's cache is invalidated right then — so a write that Redis cannot confirm
fails and rolls back instead of leaving old content cached — and again once the transaction has
committed, which voids anything a concurrent reader cached from the database between the two.
Only the second invalidation matters for correctness; over HTTP it runs before the response is
sent, so a client that saw a 2xx never reads the old content again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_templates.cache import TemplateCache

log = logging.getLogger(__name__)


class CacheNotInvalidated(Exception):
    """The change is committed, but Redis failed before its owners' cached reads were invalidated."""


class TemplateWrite:
    """One write transaction: ``session`` plus the owners it changes."""

    def __init__(self, session: AsyncSession, cache: TemplateCache) -> None:
        self.session = session
        self._cache = cache
        self._changed: set[int] = set()
        self._removed: set[int] = set()

    async def changing(self, user_id: int) -> None:
        """Invalidate ``user_id``'s cached reads now and after commit. Raises RedisError."""
        if user_id not in self._changed:
            await self._cache.invalidate(user_id)
            self._changed.add(user_id)

    async def removing(self, user_id: int) -> None:
        """Like :meth:`changing`, and after commit drop the user's cache keys altogether."""
        await self.changing(user_id)
        self._removed.add(user_id)

    async def committed(self) -> None:
        """Invalidate again now that the change is visible; raise CacheNotInvalidated on failure."""
        try:
            for user_id in sorted(self._changed):
                if user_id in self._removed:
                    await self._cache.forget(user_id)
                else:
                    await self._cache.invalidate(user_id)
        except RedisError as exc:
            raise CacheNotInvalidated(f"cached reads of users {sorted(self._changed)} may be stale") from exc


@asynccontextmanager
async def write_transaction(
    sessions: async_sessionmaker[AsyncSession], cache: TemplateCache
) -> AsyncIterator[TemplateWrite]:
    """Commit on return, roll back on error; after a commit, invalidate (see the module docstring)."""
    async with sessions() as session:
        write = TemplateWrite(session, cache)
        async with session.begin():
            yield write
    await write.committed()
