"""Background upkeep: signing-key rotation, and forgetting expired OAuth states and connect tickets."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import models
from mailmerger_auth.domain import Clock
from mailmerger_auth.signing_keys import SigningKeys
from mailmerger_shared.db import transaction

log = logging.getLogger(__name__)

UPKEEP_INTERVAL_SECONDS = 600.0


async def keep_up(sessions: async_sessionmaker[AsyncSession], keys: SigningKeys, clock: Clock) -> None:
    """One pass; idempotent, and serialised across replicas by the signing keys' rotation lock."""
    async with transaction(sessions) as session:
        await keys.maintain(session)
        now = clock()
        await session.execute(delete(models.oauth_states).where(models.oauth_states.c.expires_at < now))
        await session.execute(delete(models.connect_tickets).where(models.connect_tickets.c.expires_at < now))


async def run_upkeep(sessions: async_sessionmaker[AsyncSession], keys: SigningKeys, clock: Clock) -> None:
    """Upkeep until cancelled; a failed pass is logged and retried at the next interval."""
    while True:
        await asyncio.sleep(UPKEEP_INTERVAL_SECONDS)
        try:
            await keep_up(sessions, keys, clock)
        except Exception:
            log.exception("auth upkeep pass failed; retrying at the next interval")
