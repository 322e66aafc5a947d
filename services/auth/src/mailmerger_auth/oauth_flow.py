"""Google authorization through the browser: sign up, sign in, connect a Gmail account.

Invariants:
- An authorization is bound to the browser that started it: its state row holds the SHA-256 of a
  secret kept in that browser's httpOnly SameSite=Lax cookie, and the callback needs both.
- A state is single-use and lives at most ten minutes. The callback deletes it in a transaction
  of its own, committed before anything else happens, so no failure can make it usable again.
- PKCE S256 (the verifier stays here until the code exchange), an OpenID ``nonce`` checked in the
  ID token, and the exact redirect URI the authorization started with.
- Nothing is written for a callback until Google's answer and the ID token are verified and the
  user is known; the refusals up to that point are ``AuthorizationFailed``.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from typing import NamedTuple

from authlib.common.security import generate_token
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import models
from mailmerger_auth.adapters.google import GoogleOAuth, GoogleRefused, GoogleUnavailable, InvalidIdToken
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import GoogleIdentity, Purpose, TokenPair, clean_name, digest, normalise_email
from mailmerger_auth.errors import ConnectTicketSpent, InvalidAuthorizationState
from mailmerger_auth.gmail_accounts import save_connection
from mailmerger_auth.ownership import AccountGuard, take_over_unconfirmed
from mailmerger_auth.sessions import start_session
from mailmerger_auth.settings import GMAIL_SEND
from mailmerger_auth.tokens import TokenIssuer
from mailmerger_shared.db import transaction
from mailmerger_shared.errors import NotFound

GMAIL_SCOPES = "https://www.googleapis.com/auth/gmail."

states = models.oauth_states
users = models.users
tickets = models.connect_tickets

PKCE_VERIFIER_LENGTH = 64  # RFC 7636: 43 to 128 unreserved characters


class Authorization(NamedTuple):
    """Where to send the browser, and the secret its cookie must hold when it comes back."""

    url: str
    browser_secret: str


class PendingAuthorization(NamedTuple):
    purpose: Purpose
    user_id: int | None
    nonce: str
    code_verifier: str
    redirect_uri: str
    scopes: tuple[str, ...] = ()  # what the consent screen asked for


class Completed(NamedTuple):
    """A finished authorization: the new session, and the Gmail scopes asked for but not granted
    (the user unticked them on Google's consent screen; the connection works without them)."""

    session: TokenPair
    declined: tuple[str, ...] = ()


class AuthorizationFailed(Exception):
    """Google or the user said no, or the Google account cannot be used as asked."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


async def issue_connect_ticket(
    session: AsyncSession, *, user_id: int, now: datetime, ttl: timedelta
) -> tuple[str, datetime]:
    if (await session.execute(select(users.c.id).where(users.c.id == user_id))).scalar_one_or_none() is None:
        raise NotFound(f"user {user_id} does not exist")
    ticket, expires_at = secrets.token_urlsafe(32), now + ttl
    await session.execute(
        tickets.insert().values(ticket_hash=digest(ticket), user_id=user_id, expires_at=expires_at)
    )
    return ticket, expires_at


async def redeem_connect_ticket(session: AsyncSession, ticket: str, *, now: datetime) -> int:
    """The ticket's user; the ticket is spent with the caller's transaction."""
    row = (
        await session.execute(
            delete(tickets)
            .where(tickets.c.ticket_hash == digest(ticket))
            .returning(tickets.c.user_id, tickets.c.expires_at)
        )
    ).one_or_none()
    if row is None or row.expires_at <= now:
        raise ConnectTicketSpent()
    user_id: int = row.user_id
    return user_id


async def begin_authorization(
    session: AsyncSession,
    google: GoogleOAuth,
    *,
    purpose: Purpose,
    user_id: int | None,
    redirect_uri: str,
    scopes: list[str],
    browser_secret: str | None,
    now: datetime,
    ttl: timedelta,
) -> Authorization:
    """Record a new authorization; ``browser_secret`` is reused when the browser already has one,
    so that two tabs authorizing at once do not overwrite each other's binding."""
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    verifier = generate_token(PKCE_VERIFIER_LENGTH)
    secret = browser_secret or secrets.token_urlsafe(32)
    await session.execute(
        states.insert().values(
            state_hash=digest(state),
            browser_hash=digest(secret),
            purpose=purpose.value,
            user_id=user_id,
            nonce=nonce,
            code_verifier=verifier,
            redirect_uri=redirect_uri,
            expires_at=now + ttl,
            scopes=scopes,
        )
    )
    url = await google.authorization_url(
        redirect_uri=redirect_uri, scopes=scopes, state=state, nonce=nonce, code_verifier=verifier
    )
    return Authorization(url, secret)


async def take_pending_authorization(
    sessions: async_sessionmaker[AsyncSession],
    *,
    state: str | None,
    browser_secret: str | None,
    redirect_uri: str,
    now: datetime,
) -> PendingAuthorization:
    """Spend the state (committed at once) and check it belongs to this browser and callback."""
    if not state:
        raise InvalidAuthorizationState()
    async with transaction(sessions) as session:
        row = (
            await session.execute(
                delete(states)
                .where(states.c.state_hash == digest(state))
                .returning(
                    states.c.browser_hash,
                    states.c.purpose,
                    states.c.user_id,
                    states.c.nonce,
                    states.c.code_verifier,
                    states.c.redirect_uri,
                    states.c.expires_at,
                    states.c.scopes,
                )
            )
        ).one_or_none()
    if (
        row is None
        or row.expires_at <= now
        or not browser_secret
        or not hmac.compare_digest(digest(browser_secret), row.browser_hash)
        or row.redirect_uri != redirect_uri
    ):
        raise InvalidAuthorizationState()
    return PendingAuthorization(
        Purpose(row.purpose), row.user_id, row.nonce, row.code_verifier, row.redirect_uri, tuple(row.scopes)
    )


async def complete_authorization(
    session: AsyncSession,
    google: GoogleOAuth,
    issuer: TokenIssuer,
    sealer: Sealer,
    pending: PendingAuthorization,
    guard: AccountGuard,
    *,
    code: str | None,
    error: str | None,
    now: datetime,
) -> Completed:
    """Finish the authorization: the user is signed in (a new session) and, when Google granted
    sending, the Google account is connected as one of their Gmail accounts, with the scopes the
    user granted: one who unticked reply detection gets a send-only connection, and is told."""
    if error or not code:
        raise AuthorizationFailed(error or "invalid_request", "Google did not authorize MailMerger")
    try:
        grant = await google.exchange_code(
            code=code, redirect_uri=pending.redirect_uri, code_verifier=pending.code_verifier
        )
        if grant.id_token is None:
            raise AuthorizationFailed(
                "invalid_grant", "Google sent no ID token; the 'openid' scope is required"
            )
        identity = await google.verify_id_token(grant.id_token, nonce=pending.nonce)
    except GoogleRefused as exc:
        raise AuthorizationFailed(
            exc.error, exc.description or "Google refused the authorization code"
        ) from exc
    except InvalidIdToken as exc:
        raise AuthorizationFailed("invalid_id_token", str(exc)) from exc
    except GoogleUnavailable as exc:
        raise AuthorizationFailed("temporarily_unavailable", "Google did not answer; try again") from exc
    sends = GMAIL_SEND in grant.scopes
    if pending.purpose is Purpose.CONNECT and not sends:
        raise AuthorizationFailed(
            "gmail_not_granted", "allow MailMerger to send email as you to connect Gmail"
        )
    if sends and grant.refresh_token is None:
        raise AuthorizationFailed("no_refresh_token", "Google granted no offline access; try again")
    user_id, name = await _user_for(session, guard, pending, identity, now=now)
    if sends:
        await save_connection(session, sealer, user_id=user_id, identity=identity, grant=grant, now=now)
    pair = await start_session(session, issuer, user_id=user_id, user_name=name, now=now)
    granted = set(grant.scopes)
    declined = tuple(s for s in pending.scopes if s.startswith(GMAIL_SCOPES) and s not in granted)
    return Completed(pair, declined if sends else ())


async def _user_for(
    session: AsyncSession,
    guard: AccountGuard,
    pending: PendingAuthorization,
    identity: GoogleIdentity,
    *,
    now: datetime,
) -> tuple[int, str]:
    """The MailMerger user this authorization is for, by purpose (see domain.Purpose).

    Google vouches for the address, so its owner may sign in to the account registered with it;
    an account whose address was never proven is secured first (ownership.take_over_unconfirmed).
    """
    if pending.purpose is Purpose.CONNECT:
        assert pending.user_id is not None, "a connect authorization always names its user"
        name: str = (
            await session.execute(select(users.c.name).where(users.c.id == pending.user_id))
        ).scalar_one()
        return pending.user_id, name
    found = (
        await session.execute(select(users.c.id, users.c.name).where(users.c.google_sub == identity.sub))
    ).one_or_none()
    if found is not None:
        return found.id, found.name
    if not identity.email_verified:
        raise AuthorizationFailed("email_unverified", "Google has not verified this account's email address")
    email = normalise_email(identity.email)
    by_email = (
        await session.execute(
            select(users.c.id, users.c.name, users.c.google_sub, users.c.email_verified_at)
            .where(users.c.email == email)
            .with_for_update()
        )
    ).one_or_none()
    if by_email is not None:
        if by_email.google_sub is not None:
            raise AuthorizationFailed(
                "account_conflict", "this email's account signs in with another Google account"
            )
        if by_email.email_verified_at is None:
            await take_over_unconfirmed(
                session,
                guard,
                user_id=by_email.id,
                google_sub=identity.sub,
                email=email,
                name=by_email.name,
                now=now,
            )
        else:
            await session.execute(
                update(users).where(users.c.id == by_email.id).values(google_sub=identity.sub)
            )
        return by_email.id, by_email.name
    if pending.purpose is Purpose.SIGNIN:
        raise AuthorizationFailed(
            "no_account", "no MailMerger account uses this Google account; sign up first"
        )
    name = clean_name(identity.name or "", fallback=email.split("@", 1)[0])
    user_id: int = (
        await session.execute(
            users.insert()
            .values(
                email=email,
                name=name,
                password_hash=None,
                google_sub=identity.sub,
                email_verified_at=now,
                created_at=now,
            )
            .returning(users.c.id)
        )
    ).scalar_one()
    return user_id, name
