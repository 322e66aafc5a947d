"""Use cases of accounts: sign-up, login, the signed-in user, password change, deletion.

Sign-up and everything about proving an address lives in ``ownership``.

Invariants:
- Emails are stored normalised and unique; passwords only as argon2id hashes.
- A login answers a wrong email and a wrong password alike, after the same work (one argon2
  verification), and every attempt counts towards the throttle before the password is checked.
- A login that proves the password rehashes it when the hashing parameters changed.
- Changing the password ends every other session; deleting the account revokes its Gmail grants
  and publishes ``UserDeleted``.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_auth import gmail_accounts, models
from mailmerger_auth.adapters.google import GoogleOAuth
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import TokenPair, check_password_policy, normalise_email
from mailmerger_auth.errors import AddressUnconfirmed, InvalidCredentials
from mailmerger_auth.passwords import Passwords
from mailmerger_auth.sessions import end_other_sessions, end_session, start_session
from mailmerger_auth.throttle import LoginThrottle
from mailmerger_auth.tokens import TokenIssuer
from mailmerger_shared import contracts as c
from mailmerger_shared.errors import Conflict, Invalid, NotFound, Refused
from mailmerger_shared.outbox import stage

users = models.users


class UserRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    email: str
    name: str
    has_password: bool
    signs_in_with_google: bool
    created_at: datetime


async def log_in(
    session: AsyncSession,
    passwords: Passwords,
    issuer: TokenIssuer,
    throttle: LoginThrottle,
    *,
    email: str,
    password: str,
    client_address: str,
    now: datetime,
    require_confirmed: bool,
) -> TokenPair:
    """Sign in with a password; ``require_confirmed`` (v1) admits only a proven address (the
    legacy client signs in right after its sign-up, before any mail could be read)."""
    # A malformed email cannot match an account, but must cost and answer the same as one that does.
    try:
        email = normalise_email(email)
    except Invalid:
        email = email.strip().lower()
    await throttle.attempt(email, client_address)
    user = (
        await session.execute(
            select(users.c.id, users.c.name, users.c.password_hash, users.c.email_verified_at).where(
                users.c.email == email
            )
        )
    ).one_or_none()
    stored_hash = user.password_hash if user is not None else None
    verified = await passwords.verify(stored_hash, password)  # without an account too: same cost
    if user is None or stored_hash is None or not verified:
        raise InvalidCredentials()
    await throttle.succeeded(email)
    if require_confirmed and user.email_verified_at is None:
        raise AddressUnconfirmed()
    if passwords.needs_rehash(stored_hash):
        await session.execute(
            update(users).where(users.c.id == user.id).values(password_hash=await passwords.hash(password))
        )
    return await start_session(session, issuer, user_id=user.id, user_name=user.name, now=now)


async def get_user(session: AsyncSession, user_id: int) -> UserRecord:
    row = (
        await session.execute(
            select(
                users.c.id,
                users.c.email,
                users.c.name,
                users.c.password_hash,
                users.c.google_sub,
                users.c.created_at,
            ).where(users.c.id == user_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    return UserRecord(
        id=row.id,
        email=row.email,
        name=row.name,
        has_password=row.password_hash is not None,
        signs_in_with_google=row.google_sub is not None,
        created_at=row.created_at,
    )


async def change_password(
    session: AsyncSession,
    passwords: Passwords,
    throttle: LoginThrottle,
    *,
    user_id: int,
    session_id: uuid.UUID | None,
    current_password: str,
    new_password: str,
    now: datetime,
) -> None:
    """Replace the password and end every session but the caller's."""
    email, stored_hash = await _credentials(session, user_id)
    if stored_hash is None:
        raise Conflict("this account signs in with Google and has no password to change")
    if not await _password_matches(passwords, throttle, email, stored_hash, current_password):
        raise Refused("the current password is incorrect")
    check_password_policy(new_password)
    await session.execute(
        update(users).where(users.c.id == user_id).values(password_hash=await passwords.hash(new_password))
    )
    await end_other_sessions(session, user_id=user_id, keep=session_id, now=now)


async def log_out(
    session: AsyncSession, *, user_id: int, session_id: uuid.UUID | None, now: datetime
) -> None:
    """End the caller's session: its refresh token stops working; its access token simply expires."""
    if session_id is not None:
        await end_session(session, session_id, user_id=user_id, now=now)


async def _credentials(session: AsyncSession, user_id: int) -> tuple[str, str | None]:
    """The account's email and password hash (None: Google only), locked for the change to come."""
    row = (
        await session.execute(
            select(users.c.email, users.c.password_hash).where(users.c.id == user_id).with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    return row.email, row.password_hash


async def _password_matches(
    passwords: Passwords, throttle: LoginThrottle, email: str, stored_hash: str, password: str
) -> bool:
    """Check a signed-in user's password under the account's sign-in throttle: a stolen access token
    must not become a way to guess the password faster than signing in allows."""
    await throttle.attempt(email, None)
    if not await passwords.verify(stored_hash, password):
        return False
    await throttle.succeeded(email)
    return True


async def delete_account(
    session: AsyncSession,
    google: GoogleOAuth | None,
    sealer: Sealer,
    passwords: Passwords,
    throttle: LoginThrottle,
    *,
    user_id: int,
    session_id: uuid.UUID | None,
    password: str | None,
    reauthentication_window: timedelta,
    now: datetime,
) -> None:
    """Delete the account once the caller proved to be its owner just now, not only a token holder:
    by its password, or, for an account without one, by a session signed in within the window."""
    email, stored_hash = await _credentials(session, user_id)
    if stored_hash is not None:
        if password is None:
            raise Invalid("password: give the account's password to confirm deleting it")
        if not await _password_matches(passwords, throttle, email, stored_hash, password):
            raise Refused("the password is incorrect")
    else:
        signed_in_at = None
        if session_id is not None:
            signed_in_at = await session.scalar(
                select(models.refresh_families.c.created_at).where(
                    models.refresh_families.c.id == session_id, models.refresh_families.c.user_id == user_id
                )
            )
        if signed_in_at is None or now - signed_in_at > reauthentication_window:
            minutes = round(reauthentication_window.total_seconds() / 60)
            raise Refused(f"sign in with Google again, then delete the account within {minutes} minutes")
    await gmail_accounts.revoke_all(session, google, sealer, user_id=user_id)
    await session.execute(delete(users).where(users.c.id == user_id))  # locked above: it is there
    await stage(session, models.outbox, c.UserDeleted(user_id=user_id))
