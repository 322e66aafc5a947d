"""``/v1/auth/google`` and ``/v1/auth/gmail-accounts``: sign-in with Google and Gmail connections.

The browser is sent to Google by ``authorize`` and comes back to ``callback``, which ends on the
frontend's ``/oauth-finish`` page with the new session in the URL fragment (never sent to a server):
``#at=<access>&rt=<refresh>``, or ``#error=<code>&error_description=<text>``. A navigation carries
no bearer token, so "connect Gmail" starts from a connect ticket obtained with one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

import msgspec
from litestar import delete, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import CookieParameter, FromQuery, QueryParameter
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_auth import gmail_accounts, oauth_flow
from mailmerger_auth.adapters.google import GoogleOAuth
from mailmerger_auth.api.deps import PUBLIC, require_google, wake_post
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import Purpose
from mailmerger_auth.ownership import AccountGuard
from mailmerger_auth.settings import AuthSettings
from mailmerger_auth.tokens import TokenIssuer
from mailmerger_shared.internal_api import ConnectTicket
from mailmerger_shared.web.deps import CurrentUser, ResourceId, Transaction
from mailmerger_shared.web.openapi import problems
from mailmerger_shared.web.problems import Unprocessable

BROWSER_COOKIE = "mm_oauth_browser"
AUTHORIZE_PATH = "/v1/auth/google/authorize"
CALLBACK_PATH = "/v1/auth/google/callback"
LEGACY_CALLBACK_PATH = "/api/oauth/oauth2callback"
LEGACY_AUTHORIZE_PATH = "/api/oauth/gmail-authorize"

BrowserSecret = Annotated[str | None, CookieParameter(name=BROWSER_COOKIE)]
# Google's ``state`` query parameter (``state`` itself is Litestar's name for the app state).
OAuthState = Annotated[str | None, QueryParameter(name="state")]


class GmailAccountRead(msgspec.Struct, frozen=True, kw_only=True):
    account_id: int
    email: str
    display_name: str | None
    scopes: list[str]
    state: str


def redirect_uri(settings: AuthSettings, *, legacy: bool) -> str:
    configured = settings.google.legacy_redirect_uri if legacy else settings.google.redirect_uri
    return configured or settings.http.public_url.rstrip("/") + (
        LEGACY_CALLBACK_PATH if legacy else CALLBACK_PATH
    )


def requested_scopes(settings: AuthSettings, *, metadata: bool) -> list[str]:
    if not metadata:
        return list(settings.google.scopes)
    if not settings.google.metadata_tier:
        raise Unprocessable("reading Gmail metadata is not offered by this deployment")
    return [*settings.google.scopes, *settings.google.metadata_scopes]


async def authorization_redirect(
    tx: AsyncSession,
    google: GoogleOAuth | None,
    settings: AuthSettings,
    *,
    purpose: Purpose,
    ticket: str | None,
    metadata: bool,
    legacy: bool,
    browser_secret: str | None,
    now: datetime,
) -> Redirect:
    """Start an authorization: 302 to Google, with the browser-binding cookie set."""
    user_id = (
        await oauth_flow.redeem_connect_ticket(tx, ticket, now=now)
        if purpose is Purpose.CONNECT and ticket
        else None
    )
    if purpose is Purpose.CONNECT and user_id is None:
        raise Unprocessable("connecting Gmail needs a connect ticket (ask for one while signed in)")
    ttl = settings.auth.oauth_state_ttl_seconds
    authorization = await oauth_flow.begin_authorization(
        tx,
        require_google(google),
        purpose=purpose,
        user_id=user_id,
        redirect_uri=redirect_uri(settings, legacy=legacy),
        scopes=requested_scopes(settings, metadata=metadata),
        browser_secret=browser_secret,
        now=now,
        ttl=timedelta(seconds=ttl),
    )
    cookie = Cookie(
        key=BROWSER_COOKIE,
        value=authorization.browser_secret,
        max_age=ttl,
        path="/",
        httponly=True,
        secure=settings.http.public_url.startswith("https://"),
        samesite="lax",  # sent on Google's top-level redirect back to us, not on cross-site requests
    )
    return Redirect(authorization.url, status_code=302, cookies=[cookie])


async def callback_redirect(
    tx: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    google: GoogleOAuth | None,
    issuer: TokenIssuer,
    sealer: Sealer,
    guard: AccountGuard,
    settings: AuthSettings,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
    legacy: bool,
    browser_secret: str | None,
    now: datetime,
) -> Redirect:
    """Finish an authorization: 302 to the frontend's oauth-finish page with the session or an error.

    An invalid state is a 400 (nothing proves the request came from our own authorization).
    """
    pending = await oauth_flow.take_pending_authorization(
        sessions,
        state=state,
        browser_secret=browser_secret,
        redirect_uri=redirect_uri(settings, legacy=legacy),
        now=now,
    )
    try:
        pair = await oauth_flow.complete_authorization(
            tx, require_google(google), issuer, sealer, pending, guard, code=code, error=error, now=now
        )
    except oauth_flow.AuthorizationFailed as failure:
        fragment = {"error": failure.error, "error_description": failure.description}
    else:
        fragment = {"at": pair.access_token, "rt": pair.refresh_token}
    finish = settings.auth.frontend_url.rstrip("/") + "/oauth-finish#" + urlencode(fragment)
    return Redirect(
        finish, status_code=302, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


def connect_ticket(
    settings: AuthSettings, ticket: str, expires_at: datetime, *, legacy: bool
) -> ConnectTicket:
    base = settings.http.public_url.rstrip("/")
    if legacy:
        url = f"{base}{LEGACY_AUTHORIZE_PATH}?" + urlencode({"purpose": "authorize", "ticket": ticket})
    else:
        url = f"{base}{AUTHORIZE_PATH}?" + urlencode({"purpose": "connect", "ticket": ticket})
    return ConnectTicket(ticket=ticket, url=url, expires_at=expires_at)


# 400: the connect ticket expired or was used; 404: its user is gone; 422: no ticket to connect with.
@get("/google/authorize", opt=PUBLIC, status_code=302, responses=problems(404, 422))
async def authorize(
    tx: Transaction,
    google: NamedDependency[GoogleOAuth | None],
    config: NamedDependency[AuthSettings],
    now: NamedDependency[datetime],
    purpose: FromQuery[Purpose],
    browser_secret: BrowserSecret = None,
    ticket: FromQuery[str | None] = None,
    metadata: FromQuery[bool] = False,
) -> Redirect:
    """Browser navigation: sign up / sign in with Google, or (with a ticket) connect Gmail."""
    return await authorization_redirect(
        tx,
        google,
        config,
        purpose=purpose,
        ticket=ticket,
        metadata=metadata,
        legacy=False,
        browser_secret=browser_secret,
        now=now,
    )


@get("/google/callback", opt=PUBLIC, status_code=302, after_response=wake_post)
async def callback(
    tx: Transaction,
    sessions: NamedDependency[async_sessionmaker[AsyncSession]],
    google: NamedDependency[GoogleOAuth | None],
    issuer: NamedDependency[TokenIssuer],
    sealer: NamedDependency[Sealer],
    guard: NamedDependency[AccountGuard],
    config: NamedDependency[AuthSettings],
    now: NamedDependency[datetime],
    browser_secret: BrowserSecret = None,
    oauth_state: OAuthState = None,
    code: FromQuery[str | None] = None,
    error: FromQuery[str | None] = None,
) -> Redirect:
    return await callback_redirect(
        tx,
        sessions,
        google,
        issuer,
        sealer,
        guard,
        config,
        state=oauth_state,
        code=code,
        error=error,
        legacy=False,
        browser_secret=browser_secret,
        now=now,
    )


@post("/google/connect-tickets", status_code=201, responses=problems(404))
async def new_connect_ticket(
    principal: CurrentUser,
    tx: Transaction,
    config: NamedDependency[AuthSettings],
    now: NamedDependency[datetime],
) -> ConnectTicket:
    """A single-use link that connects a Gmail account to the caller when the browser opens it."""
    ticket, expires_at = await oauth_flow.issue_connect_ticket(
        tx, user_id=principal.user_id, now=now, ttl=timedelta(seconds=config.auth.connect_ticket_ttl_seconds)
    )
    return connect_ticket(config, ticket, expires_at, legacy=False)


@get("/gmail-accounts")
async def list_gmail_accounts(principal: CurrentUser, tx: Transaction) -> list[GmailAccountRead]:
    return [
        GmailAccountRead(
            account_id=info.account_id,
            email=info.email,
            display_name=info.display_name,
            scopes=info.scopes,
            state=info.state,
        )
        for info in await gmail_accounts.list_accounts(tx, principal.user_id)
    ]


@delete("/gmail-accounts/{account_id:int}", status_code=204)
async def disconnect_gmail_account(
    account_id: ResourceId,
    principal: CurrentUser,
    tx: Transaction,
    google: NamedDependency[GoogleOAuth | None],
    sealer: NamedDependency[Sealer],
    now: NamedDependency[datetime],
) -> None:
    await gmail_accounts.disconnect(
        tx, google, sealer, user_id=principal.user_id, account_id=account_id, now=now
    )


ROUTES = [authorize, callback, new_connect_ticket, list_gmail_accounts, disconnect_gmail_account]
