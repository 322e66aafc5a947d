"""Proving an address is its user's, and what happens to an account whose address never was.

Policy (docs/SECURITY.md, "account pre-hijacking"):
- A password sign-up proves nothing: the account starts unconfirmed and a confirmation link is
  mailed to the address. v1 lets an unconfirmed account sign in only after it is confirmed; the
  legacy client's sign-up goes straight to its dashboard, as its contract requires.
- Opening a mailed link (confirmation or password reset) proves ownership. So does Google signing
  in with the address (Google verified it).
- Google sign-in never merges into an unconfirmed account without securing it first: the owner
  takes the account over: the password is removed, every session is revoked, every connected Gmail
  account is disconnected (none of them can be the owner's: connecting needs a session of the
  account), and the owner is told by mail. A confirmed account is merged as before.
- A password reset of an unconfirmed account secures it the same way.
- The v1 sign-up answers the same for a new and a known address (202, after the same work), and
  mails the owner of a known one instead of telling the visitor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_auth import gmail_accounts, models
from mailmerger_auth.adapters.google import GoogleOAuth
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import (
    FamilyRevocation,
    TokenPair,
    check_password_policy,
    clean_name,
    normalise_email,
)
from mailmerger_auth.email_links import LinkPurpose, redeem_link
from mailmerger_auth.letters import Mailroom
from mailmerger_auth.passwords import Passwords
from mailmerger_auth.sessions import end_all_sessions, start_session
from mailmerger_auth.throttle import LoginThrottle
from mailmerger_auth.tokens import TokenIssuer
from mailmerger_shared.errors import Conflict, Invalid
from mailmerger_shared.web.auth import EndedSessions

users = models.users


@dataclass(frozen=True)
class AccountGuard:
    """What securing an account needs: Google (to revoke the grants of the Gmail accounts it
    disconnects), the sealer (to open them), the mailroom (to tell the owner), and the record of
    ended sessions with how long their access tokens could still be used."""

    google: GoogleOAuth | None
    sealer: Sealer
    mailroom: Mailroom
    ended_sessions: EndedSessions
    access_token_lifetime: timedelta

    async def secure(
        self, session: AsyncSession, *, user_id: int, now: datetime, reason: FamilyRevocation
    ) -> None:
        """Nobody but the proven owner keeps a way in: Gmail accounts disconnected, sessions ended
        (their access tokens refused everywhere within a second, see shared web.auth.EndedSessions)."""
        await gmail_accounts.disconnect_all(session, self.google, self.sealer, user_id=user_id, now=now)
        session_ids = await end_all_sessions(session, user_id=user_id, now=now, reason=reason)
        await self.ended_sessions.record(
            user_id, session_ids, lifetime_seconds=int(self.access_token_lifetime.total_seconds()) + 60
        )


class Registration(msgspec.Struct, frozen=True, kw_only=True):
    """What the v1 sign-up answers, whether or not the address already had an account."""

    status: str = "confirmation_sent"
    email: str
    detail: str = "check your inbox: the link in our email confirms the address and signs you in"


class Acknowledged(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to "mail me a link", whether or not the address has an account."""

    status: str = "sent_if_known"
    detail: str


async def register(
    session: AsyncSession,
    passwords: Passwords,
    mailroom: Mailroom,
    throttle: LoginThrottle,
    *,
    email: str,
    password: str,
    name: str,
    client_address: str,
    now: datetime,
) -> Registration:
    """v1 sign-up: an unconfirmed account and its confirmation letter, or a letter to the owner."""
    email = normalise_email(email)
    check_password_policy(password)
    await throttle.attempt(email, client_address)  # every sign-up mails someone: bounded per address
    name = clean_name(name, fallback=email.split("@", 1)[0])
    password_hash = await passwords.hash(password)  # for a known address too: the same work
    user_id = await _insert_unconfirmed(session, email=email, name=name, password_hash=password_hash, now=now)
    if user_id is not None:
        await mailroom.confirm_address(session, user_id=user_id, email=email, name=name, now=now)
    else:
        owner = (await session.execute(select(users.c.id, users.c.name).where(users.c.email == email))).one()
        await mailroom.already_registered(session, user_id=owner.id, email=email, name=owner.name, now=now)
    return Registration(email=email)


async def sign_up_unconfirmed(
    session: AsyncSession,
    passwords: Passwords,
    issuer: TokenIssuer,
    mailroom: Mailroom,
    *,
    email: str,
    password: str,
    name: str,
    now: datetime,
) -> TokenPair:
    """The legacy sign-up: signed in at once (its client's contract), confirmation mailed."""
    email = normalise_email(email)
    check_password_policy(password)
    name = clean_name(name, fallback=email.split("@", 1)[0])
    password_hash = await passwords.hash(password)
    user_id = await _insert_unconfirmed(session, email=email, name=name, password_hash=password_hash, now=now)
    if user_id is None:
        raise Conflict("an account with this email already exists; sign in instead", extra={"field": "email"})
    await mailroom.confirm_address(session, user_id=user_id, email=email, name=name, now=now)
    return await start_session(session, issuer, user_id=user_id, user_name=name, now=now)


async def confirm_address(
    session: AsyncSession, issuer: TokenIssuer, *, token: str, now: datetime
) -> TokenPair:
    """Open a confirmation link: the address is confirmed and the user signed in."""
    user_id = await redeem_link(session, token, purpose=LinkPurpose.CONFIRM_EMAIL, now=now)
    name: str = (
        await session.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(email_verified_at=_first_proof(now))
            .returning(users.c.name)
        )
    ).scalar_one()
    return await start_session(session, issuer, user_id=user_id, user_name=name, now=now)


async def resend_confirmation(
    session: AsyncSession,
    mailroom: Mailroom,
    throttle: LoginThrottle,
    *,
    email: str,
    client_address: str,
    now: datetime,
) -> Acknowledged:
    email = _lookup_form(email)
    await throttle.attempt(email, client_address)
    user = (
        await session.execute(
            select(users.c.id, users.c.name).where(
                users.c.email == email, users.c.email_verified_at.is_(None)
            )
        )
    ).one_or_none()
    if user is not None:
        await mailroom.confirm_address(session, user_id=user.id, email=email, name=user.name, now=now)
    return Acknowledged(
        detail="if this address has an unconfirmed account, a new confirmation link is on its way"
    )


async def request_password_reset(
    session: AsyncSession,
    mailroom: Mailroom,
    throttle: LoginThrottle,
    *,
    email: str,
    client_address: str,
    now: datetime,
) -> Acknowledged:
    email = _lookup_form(email)
    await throttle.attempt(email, client_address)
    user = (
        await session.execute(select(users.c.id, users.c.name).where(users.c.email == email))
    ).one_or_none()
    if user is not None:
        await mailroom.reset_password(session, user_id=user.id, email=email, name=user.name, now=now)
    return Acknowledged(detail="if this address has an account, a password reset link is on its way")


async def reset_password(
    session: AsyncSession,
    passwords: Passwords,
    issuer: TokenIssuer,
    guard: AccountGuard,
    *,
    token: str,
    new_password: str,
    now: datetime,
) -> TokenPair:
    """Open a reset link with a new password: every session ends, and the address is proven."""
    check_password_policy(new_password)  # before the link is spent: a too-short password keeps it
    user_id = await redeem_link(session, token, purpose=LinkPurpose.RESET_PASSWORD, now=now)
    user = (
        await session.execute(
            select(users.c.name, users.c.email_verified_at).where(users.c.id == user_id).with_for_update()
        )
    ).one()
    if user.email_verified_at is None:
        await guard.secure(session, user_id=user_id, now=now, reason=FamilyRevocation.PASSWORD_RESET)
    else:
        session_ids = await end_all_sessions(
            session, user_id=user_id, now=now, reason=FamilyRevocation.PASSWORD_RESET
        )
        await guard.ended_sessions.record(
            user_id, session_ids, lifetime_seconds=int(guard.access_token_lifetime.total_seconds()) + 60
        )
    await session.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(password_hash=await passwords.hash(new_password), email_verified_at=_first_proof(now))
    )
    return await start_session(session, issuer, user_id=user_id, user_name=user.name, now=now)


async def take_over_unconfirmed(
    session: AsyncSession,
    guard: AccountGuard,
    *,
    user_id: int,
    google_sub: str,
    email: str,
    name: str,
    now: datetime,
) -> None:
    """The address's owner (Google vouches) signs in to an account nobody proved was theirs."""
    await guard.secure(session, user_id=user_id, now=now, reason=FamilyRevocation.TAKEN_OVER)
    await session.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(password_hash=None, google_sub=google_sub, email_verified_at=now)
    )
    await guard.mailroom.taken_over(session, email=email, name=name, now=now)


async def _insert_unconfirmed(
    session: AsyncSession, *, email: str, name: str, password_hash: str, now: datetime
) -> int | None:
    """The new account's id, or None when the address already has one."""
    user_id: int | None = (
        await session.execute(
            insert(users)
            .values(email=email, name=name, password_hash=password_hash, created_at=now)
            .on_conflict_do_nothing(index_elements=[users.c.email])
            .returning(users.c.id)
        )
    ).scalar_one_or_none()
    return user_id


def _lookup_form(email: str) -> str:
    """A malformed address has no account; it is answered like any unknown one."""
    try:
        return normalise_email(email)
    except Invalid:
        return email.strip().lower()[:254]


def _first_proof(now: datetime) -> ColumnElement[datetime]:
    """Keep the first time the address was proven."""
    return func.coalesce(users.c.email_verified_at, now)
