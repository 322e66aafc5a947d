"""``mailmerger rekey``: the second step of an encryption-key rotation.

A rotation: add the new key to ``MM_AUTH_ENCRYPTION_KEYS`` and make it
``MM_AUTH_ENCRYPTION_ACTIVE_KEY`` (auth seals new secrets with it at once), run ``mailmerger
rekey`` with that configuration (it re-seals every Gmail token and signing key an older key
sealed, beside live traffic: ``mailmerger_auth.rekeying``), then remove the keys it reports
unused. It says how many secrets moved, of which kind, and whether any is left behind.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Mapping
from typing import TextIO

import asyncpg
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger.preflight import StartupError, describe_database_error
from mailmerger_auth import models
from mailmerger_auth.crypto import SealedSecretError, Sealer
from mailmerger_auth.rekeying import reseal_secrets
from mailmerger_auth.settings import EncryptionSettings
from mailmerger_shared.db import create_engine, create_sessionmaker
from mailmerger_shared.settings import DatabaseSettings, Deployment, load_all

# What is sealed, by the name the report gives it.
SEALED: dict[str, Table] = {"Gmail account": models.gmail_accounts, "signing key": models.signing_keys}


def rekey(env: Mapping[str, str] | None = None, *, out: TextIO | None = None) -> int:
    """Re-seal under the active key and report; 0 when no secret is left under another key."""
    _, database, encryption = load_all(Deployment, DatabaseSettings, EncryptionSettings, env=env)
    try:
        return asyncio.run(_rekey(database, encryption, out or sys.stdout))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StartupError(describe_database_error(exc, database.url)) from None


async def _rekey(database: DatabaseSettings, encryption: EncryptionSettings, out: TextIO) -> int:
    sealer = Sealer.from_settings(encryption)
    active = sealer.active_key_id
    engine = create_engine(database, application_name="mailmerger-rekey")
    try:
        sessions = create_sessionmaker(engine)
        before = await _sealed_with(sessions)
        try:
            changed = await reseal_secrets(sessions, sealer)
        except SealedSecretError as exc:
            raise StartupError(
                f"a secret does not open ({exc}): MM_AUTH_ENCRYPTION_KEYS must still hold every key that "
                "sealed one; add it back and run `mailmerger rekey` again"
            ) from None
        after = await _sealed_with(sessions)
    finally:
        await engine.dispose()
    moved = [
        _count(sum(n for (kind, key), n in before.items() if kind == k and key != active), k) for k in SEALED
    ]
    out.write(f"re-sealed {_count(changed, 'secret')} under key {active!r}: {', '.join(moved)}\n")
    left = sum(n for (_, key), n in after.items() if key != active)
    if left:
        out.write(
            f"{_count(left, 'secret')} still sealed with an older key (in use while this ran): "
            "run `mailmerger rekey` again\n"
        )
        return 1
    unused = sorted(key for key in encryption.keys if key != active)
    if unused:
        out.write(
            f"every secret is sealed with {active!r}; no longer used: {', '.join(unused)} "
            "(remove from MM_AUTH_ENCRYPTION_KEYS)\n"
        )
    else:
        out.write(f"every secret is sealed with {active!r}\n")
    return 0


async def _sealed_with(sessions: async_sessionmaker[AsyncSession]) -> Counter[tuple[str, str]]:
    """How many secrets of each kind each key sealed."""
    tally: Counter[tuple[str, str]] = Counter()
    async with sessions() as session:
        for kind, table in SEALED.items():
            key = table.c.encryption_key_id
            for key_id, count in await session.execute(select(key, func.count()).group_by(key)):
                tally[(kind, key_id)] = count
    return tally


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
