"""Consumers of the templates service: purge a deleted user's templates (queue ``templates.user-deleted``)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_shared import contracts as c
from mailmerger_shared.broker.consumer import Handler
from mailmerger_templates import service
from mailmerger_templates.cache import TemplateCache
from mailmerger_templates.writes import write_transaction

log = logging.getLogger(__name__)


def purge_deleted_users(sessions: async_sessionmaker[AsyncSession], cache: TemplateCache) -> Handler:
    """Handle ``UserDeleted`` by removing the user's templates, versions and cache keys.

    Idempotent: a redelivered event finds nothing left to delete. If the cache keys cannot be
    dropped after the commit, the handler raises, so the event is redelivered and the purge (a
    no-op by then) drops them on the next attempt.
    """

    async def handle(message: c.Message, envelope: c.Envelope) -> None:
        if not isinstance(message, c.UserDeleted):
            log.warning("ignoring unexpected message", extra={"tag": envelope.tag})
            return
        async with write_transaction(sessions, cache) as write:
            purged = await service.purge_user(write, message.user_id)
        log.info("purged a deleted user's templates", extra={"user_id": message.user_id, "templates": purged})

    return handle
