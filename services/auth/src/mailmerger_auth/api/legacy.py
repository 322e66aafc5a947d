"""The legacy client's auth and OAuth routes (shared/LEGACY_API.md), as adapters over v1.

Every answer is the envelope ``{"success", "status_code", "message", "data"}``, errors included,
with the real HTTP status. The client authenticates refresh calls with the refresh token as its
bearer token, so these routes are public to the JWT middleware.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import ownership, service
from mailmerger_auth import sessions as session_rules
from mailmerger_auth.api.deps import PUBLIC, wake_post
from mailmerger_auth.api.google import BrowserSecret, OAuthState, to_frontend, to_google
from mailmerger_auth.api.v1 import Email, Name, Secret
from mailmerger_auth.domain import Purpose
from mailmerger_auth.google_authorization import GoogleAuthorization
from mailmerger_auth.letters import Mailroom
from mailmerger_auth.passwords import Passwords
from mailmerger_auth.settings import AuthSettings
from mailmerger_auth.throttle import LoginThrottle
from mailmerger_auth.tokens import TokenIssuer
from mailmerger_shared.web.auth import bearer_token
from mailmerger_shared.web.deps import Transaction
from mailmerger_shared.web.legacy import envelope
from mailmerger_shared.web.openapi import problems

REFRESH_COOKIE = "refresh_token"


# Unknown fields are tolerated: the old client may send more than the contract lists.
class SignUp(msgspec.Struct, frozen=True):
    email: Email
    password: Secret
    name: Name = ""


class Credentials(msgspec.Struct, frozen=True):
    email: Email
    password: Secret


@post(
    "/auth/signup", opt=PUBLIC, status_code=201, responses=problems(409, 422, 429), after_response=wake_post
)
async def sign_up(
    data: JSONBody[SignUp],
    tx: Transaction,
    passwords: NamedDependency[Passwords],
    issuer: NamedDependency[TokenIssuer],
    mailroom: NamedDependency[Mailroom],
    throttle: NamedDependency[LoginThrottle],
    client_address: NamedDependency[str],
    now: NamedDependency[datetime],
) -> Response[Any]:
    """Signed in at once, as the client expects; a confirmation link is mailed all the same. The
    409 for a known address is the contract; the sign-in throttle bounds how fast it can be asked."""
    await throttle.attempt(data.email.strip().lower(), client_address)
    pair = await ownership.sign_up_unconfirmed(
        tx, passwords, issuer, mailroom, email=data.email, password=data.password, name=data.name, now=now
    )
    return envelope(
        {"jwt_token": pair.access_token, "refresh_token": pair.refresh_token}, "Account created", status=201
    )


@post("/auth/login", opt=PUBLIC, status_code=200, responses=problems(401, 429))
async def log_in(
    data: JSONBody[Credentials],
    tx: Transaction,
    passwords: NamedDependency[Passwords],
    issuer: NamedDependency[TokenIssuer],
    throttle: NamedDependency[LoginThrottle],
    client_address: NamedDependency[str],
    settings: NamedDependency[AuthSettings],
    now: NamedDependency[datetime],
) -> Response[Any]:
    pair = await service.log_in(
        tx,
        passwords,
        issuer,
        throttle,
        email=data.email,
        password=data.password,
        client_address=client_address,
        now=now,
        require_confirmed=False,
    )
    cookie = Cookie(
        key=REFRESH_COOKIE,
        value=pair.refresh_token,
        max_age=int((pair.refresh_token_expires_at - now).total_seconds()),
        path="/api/auth",
        httponly=True,
        secure=settings.http.public_url.startswith("https://"),
        samesite="strict",
    )
    return envelope(
        {"jwt_token": pair.access_token, "user_name": pair.user_name}, "Logged in", cookies=[cookie]
    )


@get("/auth/refresh-jwt-token", opt=PUBLIC, responses=problems(401))
async def refresh_jwt_token(
    request: Request[Any, Any, Any],
    sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    issuer: NamedDependency[TokenIssuer],
    now: NamedDependency[datetime],
) -> Response[Any]:
    access_token, _ = await session_rules.access_token_for(sessions, issuer, bearer_token(request), now=now)
    return envelope({"jwt_token": access_token}, "Token refreshed")


@get("/auth/renew-refresh-and-jwt-token", opt=PUBLIC, responses=problems(401))
async def renew_refresh_and_jwt_token(
    request: Request[Any, Any, Any],
    sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    issuer: NamedDependency[TokenIssuer],
    now: NamedDependency[datetime],
    settings: NamedDependency[AuthSettings],
) -> Response[Any]:
    """Accepts a refresh token past its ``exp`` (within the session's lifetime, if still current)."""
    grace = timedelta(seconds=settings.auth.refresh_reuse_grace_seconds)
    pair = await session_rules.renew_session(
        sessions, issuer, bearer_token(request), now=now, allow_expired=True, reuse_grace=grace
    )
    return envelope(
        {"jwt_token": pair.access_token, "refresh_token": pair.refresh_token, "user_name": pair.user_name},
        "Tokens renewed",
    )


@get("/oauth/gmail-authorize", opt=PUBLIC, status_code=302, responses=problems(404, 422))
async def gmail_authorize(
    tx: Transaction,
    google_authorization: NamedDependency[GoogleAuthorization],
    purpose: FromQuery[Literal["signup", "authorize"]],
    browser_secret: BrowserSecret = None,
    ticket: FromQuery[str | None] = None,
) -> Redirect:
    """``signup`` finds or creates the account; ``authorize`` connects Gmail to the ticket's user,
    or without a ticket signs in the account the Google account's email belongs to."""
    authorization = await google_authorization.start(
        tx,
        purpose=_purpose(purpose, ticket),
        ticket=ticket,
        metadata=False,
        legacy=True,
        browser_secret=browser_secret,
    )
    return to_google(google_authorization, authorization)


@get("/oauth/oauth2callback", opt=PUBLIC, status_code=302, after_response=wake_post)
async def oauth2callback(
    tx: Transaction,
    google_authorization: NamedDependency[GoogleAuthorization],
    browser_secret: BrowserSecret = None,
    oauth_state: OAuthState = None,
    code: FromQuery[str | None] = None,
    error: FromQuery[str | None] = None,
) -> Redirect:
    finish_url = await google_authorization.finish(
        tx, state=oauth_state, code=code, error=error, legacy=True, browser_secret=browser_secret
    )
    return to_frontend(finish_url)


def _purpose(legacy_purpose: str, ticket: str | None) -> Purpose:
    if legacy_purpose == "signup":
        return Purpose.SIGNUP
    return Purpose.CONNECT if ticket else Purpose.SIGNIN


ROUTES = [sign_up, log_in, refresh_jwt_token, renew_refresh_and_jwt_token, gmail_authorize, oauth2callback]
