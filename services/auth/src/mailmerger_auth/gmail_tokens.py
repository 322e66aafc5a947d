"""Fresh Gmail access tokens for the sender, refreshed at Google once per expiry.

Invariants:
- A token is never handed out within ``margin`` of its expiry; it is refreshed first.
- One refresh per account at a time. In this process an asyncio lock queues the requests, so the
  waiters do not each hold a database connection; across replicas the account's row lock, held
  during the call to Google, does the same. Whoever gets a lock after a refresh finds the fresh
  token and returns it without calling Google.
- Google answering ``invalid_grant`` marks the account ``reconnect_required`` and stages
  ``GmailReconnectRequired``; that commits before the caller is answered 409.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeAlias

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import models
from mailmerger_auth.adapters.google import GoogleOAuth, GoogleRefused, GoogleUnavailable
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import Clock, GmailAccountState
from mailmerger_auth.errors import ReconnectRequired
from mailmerger_auth.gmail_accounts import ACCESS_FIELD, REFRESH_FIELD, open_token, seal_token
from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from mailmerger_shared.errors import NotFound, Unavailable
from mailmerger_shared.internal_api import GmailAccessToken
from mailmerger_shared.outbox import stage

a = models.gmail_accounts
AccountRow: TypeAlias = Row[*tuple[Any, ...]]
_COLUMNS = (
    a.c.id,
    a.c.user_id,
    a.c.email,
    a.c.display_name,
    a.c.scopes,
    a.c.state,
    a.c.encryption_key_id,
    a.c.refresh_token,
    a.c.access_token,
    a.c.access_token_expires_at,
)


class KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class GmailTokens:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        google: GoogleOAuth | None,
        sealer: Sealer,
        clock: Clock,
        *,
        margin: timedelta,
    ) -> None:
        self._sessions = sessions
        self._google = google
        self._sealer = sealer
        self._clock = clock
        self._margin = margin
        self._locks = KeyedLocks()

    async def access_token(self, account_id: int, *, refused: str | None = None) -> GmailAccessToken:
        """A token valid for at least the margin; never ``refused``, which Gmail answered 401 to
        (revoked or rotated early: handing it out again until it expires would fail every send)."""
        async with transaction(self._sessions) as session:
            row = (await session.execute(select(*_COLUMNS).where(a.c.id == account_id))).one_or_none()
        fresh = self._fresh(_connected(row, account_id), refused)
        if fresh is not None:
            return fresh
        async with self._locks.hold(account_id):
            async with transaction(self._sessions) as session:
                outcome = await self._refresh_locked(session, account_id, refused)
            if isinstance(outcome, ReconnectRequired):
                raise outcome  # after the commit that recorded it
            return outcome

    async def _refresh_locked(
        self, session: AsyncSession, account_id: int, refused: str | None
    ) -> GmailAccessToken | ReconnectRequired:
        """Refresh under the row lock, unless someone else just did.

        Returns (rather than raises) the 409 so that marking the account commits.
        """
        found = (
            await session.execute(select(*_COLUMNS).where(a.c.id == account_id).with_for_update())
        ).one_or_none()
        row = _connected(found, account_id)
        fresh = self._fresh(row, refused)
        if fresh is not None:
            return fresh
        if self._google is None:
            raise Unavailable("Google is not configured (MM_GOOGLE_CLIENT_ID)")
        refresh_token = open_token(
            self._sealer,
            row.refresh_token,
            key_id=row.encryption_key_id,
            user_id=row.user_id,
            account_id=account_id,
            field=REFRESH_FIELD,
        )
        try:
            grant = await self._google.refresh(refresh_token)
        except GoogleRefused as exc:
            if exc.error != "invalid_grant":
                raise Unavailable(f"Google refused to refresh the token: {exc}") from exc
            await self._mark_reconnect_required(
                session, row.user_id, account_id, exc.description or exc.error
            )
            return ReconnectRequired(account_id)
        except GoogleUnavailable as exc:
            raise Unavailable("Google did not answer; retry shortly", retry_after=5) from exc
        values: dict[str, Any] = {
            "encryption_key_id": self._sealer.active_key_id,
            "access_token": seal_token(
                self._sealer,
                grant.access_token,
                user_id=row.user_id,
                account_id=account_id,
                field=ACCESS_FIELD,
            ),
            "access_token_expires_at": grant.expires_at,
            # Re-sealed under the active key, which the access token now uses too.
            "refresh_token": seal_token(
                self._sealer,
                grant.refresh_token or refresh_token,
                user_id=row.user_id,
                account_id=account_id,
                field=REFRESH_FIELD,
            ),
            "updated_at": self._clock(),
        }
        await session.execute(update(a).where(a.c.id == account_id).values(**values))
        return _answer(row, grant.access_token, grant.expires_at)

    def _fresh(self, row: AccountRow, refused: str | None = None) -> GmailAccessToken | None:
        """The stored access token, unless it is missing, within the margin of its expiry, or the
        one that was refused (a newer one, from a refresh that got there first, is fine)."""
        expires_at: datetime | None = row.access_token_expires_at
        if row.access_token is None or expires_at is None or expires_at - self._margin <= self._clock():
            return None
        token = open_token(
            self._sealer,
            row.access_token,
            key_id=row.encryption_key_id,
            user_id=row.user_id,
            account_id=row.id,
            field=ACCESS_FIELD,
        )
        if refused is not None and secrets.compare_digest(token, refused):
            return None
        return _answer(row, token, expires_at)

    async def _mark_reconnect_required(
        self, session: AsyncSession, user_id: int, account_id: int, reason: str
    ) -> None:
        await session.execute(
            update(a)
            .where(a.c.id == account_id)
            .values(
                state=GmailAccountState.RECONNECT_REQUIRED.value,
                access_token=None,
                access_token_expires_at=None,
                updated_at=self._clock(),
            )
        )
        await stage(
            session,
            models.outbox,
            c.GmailReconnectRequired(user_id=user_id, account_id=account_id, reason=reason),
        )


def _connected(row: AccountRow | None, account_id: int) -> AccountRow:
    if row is None or row.state == GmailAccountState.DISCONNECTED:
        raise NotFound(f"Gmail account {account_id} is not connected")
    if row.state == GmailAccountState.RECONNECT_REQUIRED:
        raise ReconnectRequired(account_id)
    return row


def _answer(row: AccountRow, token: str, expires_at: datetime) -> GmailAccessToken:
    return GmailAccessToken(
        account_id=row.id,
        user_id=row.user_id,
        email=row.email,
        display_name=row.display_name,
        access_token=token,
        expires_at=expires_at,
        scopes=list(row.scopes),
    )
