"""Links mailed to an address: "confirm this address" and "reset your password".

Invariants:
- A link's token is 256 random bits; only its SHA-256 is stored, so a database reader holds no
  usable link.
- A link works once (redeeming deletes it in the caller's transaction) and until it expires.
- Only the newest reset link of a user works: issuing one deletes the user's older ones.
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_auth import models
from mailmerger_auth.domain import digest
from mailmerger_auth.errors import InvalidLink

links = models.email_links


class LinkPurpose(enum.StrEnum):
    CONFIRM_EMAIL = "confirm_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 (a purpose, not a password)


# How to get a new link, told with the refusal of a spent one.
_REMEDY = {
    LinkPurpose.CONFIRM_EMAIL: "sign in (or ask for a new confirmation email) to get a new one",
    LinkPurpose.RESET_PASSWORD: "ask for a new password reset email",
}


async def issue_link(
    session: AsyncSession, *, user_id: int, purpose: LinkPurpose, now: datetime, ttl: timedelta
) -> str:
    """A new link's token (to be mailed, never stored)."""
    if purpose is LinkPurpose.RESET_PASSWORD:
        await session.execute(
            delete(links).where(links.c.user_id == user_id, links.c.purpose == purpose.value)
        )
    token = secrets.token_urlsafe(32)
    await session.execute(
        links.insert().values(
            token_hash=digest(token), user_id=user_id, purpose=purpose.value, expires_at=now + ttl
        )
    )
    return token


async def redeem_link(session: AsyncSession, token: str, *, purpose: LinkPurpose, now: datetime) -> int:
    """The link's user; the link is spent with the caller's transaction."""
    row = (
        await session.execute(
            delete(links)
            .where(links.c.token_hash == digest(token), links.c.purpose == purpose.value)
            .returning(links.c.user_id, links.c.expires_at)
        )
    ).one_or_none()
    if row is None or row.expires_at <= now:
        raise InvalidLink(_REMEDY[purpose])
    user_id: int = row.user_id
    return user_id
