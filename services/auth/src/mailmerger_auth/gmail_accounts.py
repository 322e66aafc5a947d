"""Connected Gmail accounts: connecting, listing, disconnecting.

Invariants:
- An account is one (user, Google subject) pair. Connecting the same Google account again updates
  its row, so its id, which other services key their state by, never changes.
- Google tokens are stored sealed and bound to (user id, account id, which token); a disconnected
  account keeps its row but holds no token.
- Every change of state stages its event (``GmailConnected``…) in the same transaction.
- Disconnecting (or deleting the user) revokes the grant at Google. When Google cannot be reached
  the local disconnect still happens: the token is erased, so the grant is unusable by anyone.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_auth import models
from mailmerger_auth.adapters.google import GoogleError, GoogleOAuth
from mailmerger_auth.crypto import Sealer, gmail_token_context
from mailmerger_auth.domain import GmailAccountState, GoogleGrant, GoogleIdentity
from mailmerger_shared import contracts as c
from mailmerger_shared.errors import NotFound
from mailmerger_shared.internal_api import GmailAccountInfo
from mailmerger_shared.outbox import stage

log = logging.getLogger(__name__)

a = models.gmail_accounts
REFRESH_FIELD = "refresh_token"
ACCESS_FIELD = "access_token"


def seal_token(sealer: Sealer, token: str, *, user_id: int, account_id: int, field: str) -> bytes:
    return sealer.seal(token.encode(), context=gmail_token_context(user_id, account_id, field))


def open_token(
    sealer: Sealer, sealed: bytes, *, key_id: str, user_id: int, account_id: int, field: str
) -> str:
    return sealer.open(
        sealed, key_id=key_id, context=gmail_token_context(user_id, account_id, field)
    ).decode()


async def save_connection(
    session: AsyncSession,
    sealer: Sealer,
    *,
    user_id: int,
    identity: GoogleIdentity,
    grant: GoogleGrant,
    now: datetime,
) -> int:
    """Store (or renew) the user's connection to this Google account; returns the account id."""
    if grant.refresh_token is None:
        raise ValueError("a Gmail connection needs the refresh token of an offline grant")
    existing = (
        await session.execute(
            select(a.c.id).where(a.c.user_id == user_id, a.c.google_sub == identity.sub).with_for_update()
        )
    ).scalar_one_or_none()
    account_id = existing if existing is not None else await _new_account_id(session)
    values = {
        "email": identity.email,
        "display_name": identity.name,
        "scopes": sorted(grant.scopes),
        "state": GmailAccountState.CONNECTED.value,
        "encryption_key_id": sealer.active_key_id,
        "refresh_token": seal_token(
            sealer, grant.refresh_token, user_id=user_id, account_id=account_id, field=REFRESH_FIELD
        ),
        "access_token": seal_token(
            sealer, grant.access_token, user_id=user_id, account_id=account_id, field=ACCESS_FIELD
        ),
        "access_token_expires_at": grant.expires_at,
        "connected_at": now,
        "updated_at": now,
    }
    if existing is None:
        await session.execute(
            a.insert().values(id=account_id, user_id=user_id, google_sub=identity.sub, **values)
        )
    else:
        await session.execute(update(a).where(a.c.id == account_id).values(**values))
    await stage(
        session,
        models.outbox,
        c.GmailConnected(
            user_id=user_id,
            account_id=account_id,
            email=identity.email,
            display_name=identity.name,
            scopes=sorted(grant.scopes),
        ),
    )
    return account_id


async def _new_account_id(session: AsyncSession) -> int:
    """Drawn before the insert, because the sealed tokens are bound to the id."""
    sequence = func.pg_get_serial_sequence(f"{a.schema}.{a.name}", "id")
    account_id: int = (await session.execute(select(func.nextval(sequence)))).scalar_one()
    return account_id


async def list_accounts(session: AsyncSession, user_id: int) -> list[GmailAccountInfo]:
    rows = await session.execute(
        select(a.c.id, a.c.email, a.c.display_name, a.c.scopes, a.c.state)
        .where(a.c.user_id == user_id)
        .order_by(a.c.id)
    )
    return [
        GmailAccountInfo(
            account_id=row.id,
            user_id=user_id,
            email=row.email,
            display_name=row.display_name,
            scopes=list(row.scopes),
            state=row.state,
        )
        for row in rows
    ]


async def disconnect(
    session: AsyncSession,
    google: GoogleOAuth | None,
    sealer: Sealer,
    *,
    user_id: int,
    account_id: int,
    now: datetime,
) -> None:
    """Revoke and forget the account's tokens. Disconnecting twice is harmless."""
    row = (
        await session.execute(
            select(a.c.id, a.c.state, a.c.refresh_token, a.c.encryption_key_id)
            .where(a.c.id == account_id, a.c.user_id == user_id)
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"Gmail account {account_id} does not exist")
    if row.state == GmailAccountState.DISCONNECTED:
        return
    await _revoke_at_google(
        google,
        sealer,
        user_id=user_id,
        account_id=account_id,
        sealed=row.refresh_token,
        key_id=row.encryption_key_id,
    )
    await session.execute(
        update(a)
        .where(a.c.id == account_id)
        .values(
            state=GmailAccountState.DISCONNECTED.value,
            encryption_key_id=None,
            refresh_token=None,
            access_token=None,
            access_token_expires_at=None,
            updated_at=now,
        )
    )
    await stage(session, models.outbox, c.GmailDisconnected(user_id=user_id, account_id=account_id))


async def disconnect_all(
    session: AsyncSession, google: GoogleOAuth | None, sealer: Sealer, *, user_id: int, now: datetime
) -> None:
    """Disconnect every connected Gmail account of the user (an account changing hands)."""
    account_ids = (
        await session.execute(
            select(a.c.id).where(a.c.user_id == user_id, a.c.state != GmailAccountState.DISCONNECTED.value)
        )
    ).scalars()
    for account_id in list(account_ids):
        await disconnect(session, google, sealer, user_id=user_id, account_id=account_id, now=now)


async def revoke_all(
    session: AsyncSession, google: GoogleOAuth | None, sealer: Sealer, *, user_id: int
) -> None:
    """Revoke every grant the user's accounts hold (before the user and their rows are deleted)."""
    rows = await session.execute(
        select(a.c.id, a.c.refresh_token, a.c.encryption_key_id).where(
            a.c.user_id == user_id, a.c.refresh_token.is_not(None)
        )
    )
    for row in rows.all():
        await _revoke_at_google(
            google,
            sealer,
            user_id=user_id,
            account_id=row.id,
            sealed=row.refresh_token,
            key_id=row.encryption_key_id,
        )


async def _revoke_at_google(
    google: GoogleOAuth | None,
    sealer: Sealer,
    *,
    user_id: int,
    account_id: int,
    sealed: bytes | None,
    key_id: str | None,
) -> None:
    if google is None or sealed is None or key_id is None:
        return
    token = open_token(
        sealer, sealed, key_id=key_id, user_id=user_id, account_id=account_id, field=REFRESH_FIELD
    )
    try:
        await google.revoke(token)
    except GoogleError as exc:
        log.warning(
            "could not revoke a Gmail grant at Google", extra={"account_id": account_id, "error": repr(exc)}
        )
