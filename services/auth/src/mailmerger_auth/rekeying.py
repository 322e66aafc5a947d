"""Re-sealing every stored secret under the active encryption key (the second step of a rotation).

A rotation is: add the new key to ``MM_AUTH_ENCRYPTION_KEYS`` and make it active (new secrets are
sealed with it at once), run ``reseal_secrets``, then remove the old key. Rows are claimed a batch
at a time with ``SKIP LOCKED``, so this runs safely beside live traffic and on several replicas.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import models
from mailmerger_auth.crypto import Sealer, gmail_token_context, signing_key_context
from mailmerger_auth.gmail_accounts import ACCESS_FIELD, REFRESH_FIELD
from mailmerger_shared.db import transaction

BATCH_SIZE = 100


async def reseal_secrets(sessions: async_sessionmaker[AsyncSession], sealer: Sealer) -> int:
    """Re-seal what an older key sealed; returns how many rows changed."""
    changed = 0
    while batch := await _reseal_batch(sessions, sealer):
        changed += batch
    return changed


async def _reseal_batch(sessions: async_sessionmaker[AsyncSession], sealer: Sealer) -> int:
    accounts, keys = models.gmail_accounts, models.signing_keys
    active = sealer.active_key_id

    def reseal(sealed: bytes | None, key_id: str, context: bytes) -> bytes | None:
        if sealed is None:
            return None
        return sealer.seal(sealer.open(sealed, key_id=key_id, context=context), context=context)

    async with transaction(sessions) as session:
        account_rows = (
            await session.execute(
                select(
                    accounts.c.id,
                    accounts.c.user_id,
                    accounts.c.encryption_key_id,
                    accounts.c.refresh_token,
                    accounts.c.access_token,
                )
                .where(accounts.c.encryption_key_id != active)
                .limit(BATCH_SIZE)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for account in account_rows:
            await session.execute(
                update(accounts)
                .where(accounts.c.id == account.id)
                .values(
                    encryption_key_id=active,
                    refresh_token=reseal(
                        account.refresh_token,
                        account.encryption_key_id,
                        gmail_token_context(account.user_id, account.id, REFRESH_FIELD),
                    ),
                    access_token=reseal(
                        account.access_token,
                        account.encryption_key_id,
                        gmail_token_context(account.user_id, account.id, ACCESS_FIELD),
                    ),
                )
            )
        key_rows = (
            await session.execute(
                select(keys.c.kid, keys.c.encryption_key_id, keys.c.private_key)
                .where(keys.c.encryption_key_id != active)
                .limit(BATCH_SIZE)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for key in key_rows:
            await session.execute(
                update(keys)
                .where(keys.c.kid == key.kid)
                .values(
                    encryption_key_id=active,
                    private_key=reseal(key.private_key, key.encryption_key_id, signing_key_context(key.kid)),
                )
            )
        return len(account_rows) + len(key_rows)
