"""``/internal/auth``: what other services ask of auth (shapes in ``mailmerger_shared.internal_api``).

Every route names its one caller and needs that caller's credential, no user token: only the
sender obtains Gmail access tokens, only the queue issues connect tickets. The gateway never
routes here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from litestar import post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from mailmerger_auth import oauth_flow
from mailmerger_auth.api.google import connect_ticket
from mailmerger_auth.gmail_tokens import GmailTokens
from mailmerger_auth.settings import AuthSettings
from mailmerger_shared.internal_api import (
    AccessTokenRequest,
    ConnectTicket,
    GmailAccessToken,
)
from mailmerger_shared.web.deps import Transaction


@post("/gmail-accounts/{account_id:int}/access-token", status_code=200)
async def gmail_access_token(
    account_id: FromPath[int],
    gmail_tokens: NamedDependency[GmailTokens],
    data: JSONBody[AccessTokenRequest | None] = None,
) -> GmailAccessToken:
    """A token valid for at least the refresh margin (and not the one the caller saw refused);
    409 ``reconnect_required`` when Google refused the refresh token."""
    return await gmail_tokens.access_token(account_id, refused=data.refused if data else None)


@post("/users/{user_id:int}/connect-tickets", status_code=201)
async def user_connect_ticket(
    user_id: FromPath[int],
    tx: Transaction,
    settings: NamedDependency[AuthSettings],
    now: NamedDependency[datetime],
) -> ConnectTicket:
    """For a legacy client's browser: its ``url`` connects Gmail to ``user_id`` when opened."""
    ticket, expires_at = await oauth_flow.issue_connect_ticket(
        tx, user_id=user_id, now=now, ttl=timedelta(seconds=settings.auth.connect_ticket_ttl_seconds)
    )
    return connect_ticket(settings, ticket, expires_at, legacy=True)


# Each route's one caller: ``api.routes`` guards it with that caller's credential.
ROUTES_BY_CALLER = {"sender": [gmail_access_token], "queue": [user_connect_ticket]}
