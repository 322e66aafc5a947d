"""``mailmerger rekey``: the step that completes an encryption-key rotation, run as an operator runs it."""

from __future__ import annotations

import asyncio
import base64
import io
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mailmerger.migrate import migrate
from mailmerger.rekey import rekey
from mailmerger_auth import models
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import GoogleGrant, GoogleIdentity
from mailmerger_auth.gmail_accounts import save_connection
from mailmerger_auth.signing_keys import KeyPolicy, SigningKeys
from mailmerger_shared.db import (
    create_engine,
    create_sessionmaker,
    drop_database,
    ensure_database,
    transaction,
)
from mailmerger_shared.settings import DatabaseSettings
from tests.conftest import PG_BASE, RUN_ID

OLD, NEW = os.urandom(32), os.urandom(32)
POLICY = KeyPolicy(
    rotate_after=timedelta(days=30),
    publish_ahead=timedelta(minutes=2),
    published_after_retirement=timedelta(minutes=15),
    verifies_after_retirement=timedelta(days=30),
)


def _b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


@pytest.fixture
async def sealed_under_old_key() -> AsyncIterator[str]:
    """A database of its own (rekeying the suite's would move other tests' secrets) holding a
    signing key and a Gmail account sealed with the key ``old``."""
    url = f"{PG_BASE}/mm_test_{RUN_ID}_rekey"
    await ensure_database(url)
    await migrate("auth", database=DatabaseSettings(url=url))
    engine = create_engine(DatabaseSettings(url=url), application_name="test-rekey")
    sessions, old = create_sessionmaker(engine), Sealer({"old": OLD}, "old")
    now = datetime.now(UTC)
    try:
        async with transaction(sessions) as session:
            await SigningKeys(old, POLICY, lambda: now).maintain(session)
            user_id = (
                await session.execute(
                    models.users.insert()
                    .values(email="rotate@example.com", name="Rotate", created_at=now)
                    .returning(models.users.c.id)
                )
            ).scalar_one()
            await save_connection(
                session,
                old,
                user_id=user_id,
                identity=GoogleIdentity(sub="4321", email="rotate@gmail.com", email_verified=True),
                grant=GoogleGrant(
                    access_token="ya29.rotate",
                    expires_at=now + timedelta(hours=1),
                    scopes=["https://www.googleapis.com/auth/gmail.send"],
                    refresh_token="1//rotate",
                ),
                now=now,
            )
    finally:
        await engine.dispose()
    yield url
    await drop_database(url)


async def _key_ids(url: str) -> set[str]:
    engine = create_engine(DatabaseSettings(url=url), application_name="test-rekey")
    try:
        async with create_sessionmaker(engine)() as session:
            ids = set((await session.execute(select(models.gmail_accounts.c.encryption_key_id))).scalars())
            return ids | set(
                (await session.execute(select(models.signing_keys.c.encryption_key_id))).scalars()
            )
    finally:
        await engine.dispose()


async def test_rekey_reseals_every_secret_under_the_active_key_and_reports_the_counts(
    sealed_under_old_key: str,
) -> None:
    """With ``new`` made active beside ``old``: one Gmail account and one signing key move to ``new``,
    the report says so and that ``old`` can go; a second run moves nothing."""
    env = {
        "MM_DB_URL": sealed_under_old_key,
        "MM_AUTH_ENCRYPTION_KEYS": f'{{"old": "{_b64(OLD)}", "new": "{_b64(NEW)}"}}',
        "MM_AUTH_ENCRYPTION_ACTIVE_KEY": "new",
    }
    first, again = io.StringIO(), io.StringIO()
    # It runs its own event loop, as the command does: off this test's.
    assert await asyncio.to_thread(rekey, env, out=first) == 0
    assert first.getvalue().splitlines() == [
        "re-sealed 2 secrets under key 'new': 1 Gmail account, 1 signing key",
        "every secret is sealed with 'new'; no longer used: old (remove from MM_AUTH_ENCRYPTION_KEYS)",
    ]
    assert await _key_ids(sealed_under_old_key) == {"new"}
    assert await asyncio.to_thread(rekey, env, out=again) == 0
    assert again.getvalue().startswith(
        "re-sealed 0 secrets under key 'new': 0 Gmail accounts, 0 signing keys\n"
    )
