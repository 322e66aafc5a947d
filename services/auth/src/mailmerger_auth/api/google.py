"""``/v1/auth/google`` and ``/v1/auth/gmail-accounts``: sign-in with Google and Gmail connections.

The browser is sent to Google by ``authorize`` and comes back to ``callback``, which ends on the
frontend's ``/oauth-finish`` page with the new session in the URL fragment (never sent to a server):
``#at=<access>&rt=<refresh>``, or ``#error=<code>&error_description=<text>``. A navigation carries
no bearer token, so "connect Gmail" starts from a connect ticket obtained with one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, delete, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import CookieParameter, FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect

from mailmerger_auth import gmail_accounts, oauth_flow
from mailmerger_auth.adapters.google import GoogleOAuth
from mailmerger_auth.api.deps import PUBLIC, wake_post
from mailmerger_auth.crypto import Sealer
from mailmerger_auth.domain import Purpose
from mailmerger_auth.google_authorization import GoogleAuthorization, requested_scopes
from mailmerger_auth.oauth_flow import Authorization
from mailmerger_auth.settings import GMAIL_METADATA, AuthSettings
from mailmerger_shared.internal_api import ConnectTicket
from mailmerger_shared.web.deps import CurrentUser, ResourceId, Transaction
from mailmerger_shared.web.openapi import problems

BROWSER_COOKIE = "mm_oauth_browser"
AUTHORIZE_PATH = "/v1/auth/google/authorize"
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
    # The tier: true when the account granted gmail.metadata (headers only), so the mailbox watcher
    # detects replies and bounces; false for a send-only connection (gmail.send).
    reply_detection: bool


class ConnectOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``reply_detection``: also ask for gmail.metadata (message headers, never bodies), so replies
    and bounces stop follow-ups. Asking again for a connected account upgrades it (incremental
    consent keeps the scopes it has)."""

    reply_detection: bool = False


def to_google(flow: GoogleAuthorization, authorization: Authorization) -> Redirect:
    """302 to Google, with the cookie that binds the authorization to this browser."""
    cookie = Cookie(
        key=BROWSER_COOKIE,
        value=authorization.browser_secret,
        max_age=int(flow.state_ttl.total_seconds()),
        path="/",
        httponly=True,
        secure=flow.settings.http.public_url.startswith("https://"),
        samesite="lax",  # sent on Google's top-level redirect back to us, not on cross-site requests
    )
    return Redirect(authorization.url, status_code=302, cookies=[cookie])


def to_frontend(finish_url: str) -> Redirect:
    """302 to the frontend's oauth-finish page; the session in its fragment is never cached or
    handed on as a referrer."""
    return Redirect(
        finish_url, status_code=302, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


def connect_ticket(
    settings: AuthSettings, ticket: str, expires_at: datetime, *, legacy: bool, reply_detection: bool = False
) -> ConnectTicket:
    base = settings.http.public_url.rstrip("/")
    if legacy:
        url = f"{base}{LEGACY_AUTHORIZE_PATH}?" + urlencode({"purpose": "authorize", "ticket": ticket})
    else:
        query = {"purpose": "connect", "ticket": ticket}
        if reply_detection:
            query["metadata"] = "true"
        url = f"{base}{AUTHORIZE_PATH}?" + urlencode(query)
    return ConnectTicket(ticket=ticket, url=url, expires_at=expires_at)


async def _strictly(request: Request[Any, Any, Any]) -> None:
    """Litestar converts a body leniently (``{"reply_detection": 0}`` would read as false): a
    body that is not exactly the documented shape is a 400 saying what is wrong."""
    body = await request.body()
    if body.strip():
        try:
            msgspec.json.decode(body, type=ConnectOptions | None, strict=True)
        except msgspec.ValidationError as exc:
            raise ValidationException(f"Validation failed for POST {request.url.path}: {exc}") from None


# 400: the connect ticket expired or was used; 404: its user is gone; 422: no ticket to connect with.
@get("/google/authorize", opt=PUBLIC, status_code=302, responses=problems(404, 422))
async def authorize(
    tx: Transaction,
    google_authorization: NamedDependency[GoogleAuthorization],
    purpose: FromQuery[Purpose],
    browser_secret: BrowserSecret = None,
    ticket: FromQuery[str | None] = None,
    metadata: FromQuery[bool] = False,
) -> Redirect:
    """Browser navigation: sign up / sign in with Google, or (with a ticket) connect Gmail."""
    authorization = await google_authorization.start(
        tx, purpose=purpose, ticket=ticket, metadata=metadata, legacy=False, browser_secret=browser_secret
    )
    return to_google(google_authorization, authorization)


@get("/google/callback", opt=PUBLIC, status_code=302, after_response=wake_post)
async def callback(
    tx: Transaction,
    google_authorization: NamedDependency[GoogleAuthorization],
    browser_secret: BrowserSecret = None,
    oauth_state: OAuthState = None,
    code: FromQuery[str | None] = None,
    error: FromQuery[str | None] = None,
) -> Redirect:
    """Google's answer: 302 to the frontend's oauth-finish page with the session or an error (an
    invalid state is a 400)."""
    finish_url = await google_authorization.finish(
        tx, state=oauth_state, code=code, error=error, legacy=False, browser_secret=browser_secret
    )
    return to_frontend(finish_url)


@post("/google/connect-tickets", status_code=201, responses=problems(404, 422))
async def new_connect_ticket(
    principal: CurrentUser,
    tx: Transaction,
    settings: NamedDependency[AuthSettings],
    now: NamedDependency[datetime],
    request: Request[Any, Any, Any],
    data: JSONBody[ConnectOptions | None] = None,
) -> ConnectTicket:
    """A single-use link that connects a Gmail account to the caller when the browser opens it.

    Send-only by default (``gmail.send``); ``{"reply_detection": true}`` also asks for
    ``gmail.metadata`` (a 422 where the deployment does not offer it)."""
    await _strictly(request)
    reply_detection = data is not None and data.reply_detection
    if reply_detection:
        requested_scopes(settings, metadata=True)  # refuses where the deployment does not offer it
    ticket, expires_at = await oauth_flow.issue_connect_ticket(
        tx,
        user_id=principal.user_id,
        now=now,
        ttl=timedelta(seconds=settings.auth.connect_ticket_ttl_seconds),
    )
    return connect_ticket(settings, ticket, expires_at, legacy=False, reply_detection=reply_detection)


@get("/gmail-accounts")
async def list_gmail_accounts(principal: CurrentUser, tx: Transaction) -> list[GmailAccountRead]:
    return [
        GmailAccountRead(
            account_id=info.account_id,
            email=info.email,
            display_name=info.display_name,
            scopes=info.scopes,
            state=info.state,
            reply_detection=GMAIL_METADATA in info.scopes,
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
