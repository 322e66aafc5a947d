"""Sessions: refresh-token families.

Invariants:
- A session is one family row; each refresh token names its family (``sid``) and its own ``jti``.
  Only the family's current ``jti`` is usable; every rotation replaces it.
- A signed token of the family that is not the current one has been rotated away, so someone
  holds a copy: the whole family is revoked, in a transaction of its own that commits although
  the caller is answered 401 (functions that use a refresh token own their transactions).
  One exception: the token the last rotation replaced, presented within the reuse grace of that
  rotation, is two tabs refreshing at once; the late one is given the current jti again (a new
  signature of it) and nothing rotates, so both tabs hold the one usable token.
- No renewal outlives ``expires_at``, the session's absolute end fixed at sign-in. An expired
  refresh token renews only when the caller allows it (the legacy client does), only within that
  lifetime, and only if it is still the current one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import models
from mailmerger_auth.domain import FamilyRevocation, RefreshClaims, TokenPair
from mailmerger_auth.errors import InvalidRefreshToken
from mailmerger_auth.tokens import TokenIssuer
from mailmerger_shared.db import transaction

f = models.refresh_families
users = models.users


async def start_session(
    session: AsyncSession,
    issuer: TokenIssuer,
    *,
    user_id: int,
    user_name: str,
    now: datetime,
) -> TokenPair:
    family_id, jti = uuid.uuid4(), uuid.uuid4()
    ends_at = now + issuer.session_lifetime
    await session.execute(
        f.insert().values(id=family_id, user_id=user_id, current_jti=jti, created_at=now, expires_at=ends_at)
    )
    access, access_expires = await issuer.access_token(session, user_id=user_id, family_id=family_id, now=now)
    refresh, refresh_expires = await issuer.refresh_token(
        session, user_id=user_id, family_id=family_id, jti=jti, now=now, session_ends_at=ends_at
    )
    return TokenPair(
        user_id=user_id,
        user_name=user_name,
        access_token=access,
        access_token_expires_at=access_expires,
        refresh_token=refresh,
        refresh_token_expires_at=refresh_expires,
    )


async def renew_session(
    sessions: async_sessionmaker[AsyncSession],
    issuer: TokenIssuer,
    token: str,
    *,
    now: datetime,
    allow_expired: bool = False,
    reuse_grace: timedelta = timedelta(0),
) -> TokenPair:
    """Rotate: the presented refresh token is spent, a new pair is returned."""
    async with _revoking_on_reuse(sessions, now) as session:
        usable = await _usable_claims(
            session, issuer, token, now=now, allow_expired=allow_expired, reuse_grace=reuse_grace
        )
        claims = usable.claims
        if usable.concurrent_with is not None:
            jti = usable.concurrent_with  # the other tab's rotation stands
        else:
            jti = uuid.uuid4()
            await session.execute(
                update(f)
                .where(f.c.id == claims.family_id)
                .values(current_jti=jti, previous_jti=claims.jti, rotated_at=now)
            )
        ends_at = usable.session_ends_at
        name = (await session.execute(select(users.c.name).where(users.c.id == claims.user_id))).scalar_one()
        access, access_expires = await issuer.access_token(
            session, user_id=claims.user_id, family_id=claims.family_id, now=now
        )
        refresh, refresh_expires = await issuer.refresh_token(
            session,
            user_id=claims.user_id,
            family_id=claims.family_id,
            jti=jti,
            now=now,
            session_ends_at=ends_at,
        )
        return TokenPair(
            user_id=claims.user_id,
            user_name=name,
            access_token=access,
            access_token_expires_at=access_expires,
            refresh_token=refresh,
            refresh_token_expires_at=refresh_expires,
        )


async def access_token_for(
    sessions: async_sessionmaker[AsyncSession], issuer: TokenIssuer, token: str, *, now: datetime
) -> tuple[str, datetime]:
    """A new access token for the current, unexpired refresh token, which stays current.

    For the legacy client's ``refresh-jwt-token``, which never receives a new refresh token: no
    refresh token is handed out here, so there is nothing to rotate.
    """
    async with _revoking_on_reuse(sessions, now) as session:
        claims = (await _usable_claims(session, issuer, token, now=now, allow_expired=False)).claims
        return await issuer.access_token(session, user_id=claims.user_id, family_id=claims.family_id, now=now)


async def end_session(session: AsyncSession, family_id: uuid.UUID, *, user_id: int, now: datetime) -> None:
    await _revoke(session, (f.c.id == family_id) & (f.c.user_id == user_id), now, FamilyRevocation.LOGOUT)


async def end_other_sessions(
    session: AsyncSession, *, user_id: int, keep: uuid.UUID | None, now: datetime
) -> None:
    condition = f.c.user_id == user_id
    if keep is not None:
        condition &= f.c.id != keep
    await _revoke(session, condition, now, FamilyRevocation.PASSWORD_CHANGED)


async def end_all_sessions(
    session: AsyncSession, *, user_id: int, now: datetime, reason: FamilyRevocation
) -> list[str]:
    """End every session of the user; the ids of those that were still open."""
    ended = await session.execute(
        update(f)
        .where(f.c.user_id == user_id, f.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason.value)
        .returning(f.c.id)
    )
    return [str(family_id) for family_id in ended.scalars()]


class _Reused(Exception):
    def __init__(self, family_id: uuid.UUID) -> None:
        self.family_id = family_id


@asynccontextmanager
async def _revoking_on_reuse(
    sessions: async_sessionmaker[AsyncSession], now: datetime
) -> AsyncIterator[AsyncSession]:
    """A transaction for using a refresh token; a reuse found in it revokes the family.

    The revocation has its own transaction, committed after the first one rolled back (and let go
    of the family's row lock), so it stands although the caller is answered 401.
    """
    try:
        async with transaction(sessions) as session:
            yield session
    except _Reused as reuse:
        async with transaction(sessions) as session:
            await _revoke(session, f.c.id == reuse.family_id, now, FamilyRevocation.REUSE)
        raise InvalidRefreshToken("the refresh token was already used; the session is revoked") from None


@dataclass(frozen=True)
class _Usable:
    claims: RefreshClaims
    session_ends_at: datetime
    # The current jti, when the token is the one it replaced moments ago (another tab's rotation).
    concurrent_with: uuid.UUID | None = None


async def _usable_claims(
    session: AsyncSession,
    issuer: TokenIssuer,
    token: str,
    *,
    now: datetime,
    allow_expired: bool,
    reuse_grace: timedelta = timedelta(0),
) -> _Usable:
    """The token's claims, with its family locked, when the token may be used now."""
    claims = await issuer.read_refresh_token(session, token)
    family = (
        await session.execute(
            select(f.c.current_jti, f.c.previous_jti, f.c.rotated_at, f.c.expires_at, f.c.revoked_at)
            .where(f.c.id == claims.family_id, f.c.user_id == claims.user_id)
            .with_for_update()
        )
    ).one_or_none()
    if family is None or family.revoked_at is not None:
        raise InvalidRefreshToken("the session has ended; sign in again")
    concurrent_with = None
    if family.current_jti != claims.jti:
        just_replaced = (
            family.previous_jti == claims.jti
            and family.rotated_at is not None
            and now - family.rotated_at <= reuse_grace
        )
        if not just_replaced:
            raise _Reused(claims.family_id)
        concurrent_with = family.current_jti
    if family.expires_at <= now:
        raise InvalidRefreshToken("the session has reached its maximum lifetime; sign in again")
    if claims.expires_at <= now and not allow_expired:
        raise InvalidRefreshToken("the refresh token has expired")
    return _Usable(claims, family.expires_at, concurrent_with)


async def _revoke(
    session: AsyncSession, which: ColumnElement[bool], now: datetime, reason: FamilyRevocation
) -> None:
    await session.execute(
        update(f).where(which, f.c.revoked_at.is_(None)).values(revoked_at=now, revoked_reason=reason.value)
    )
