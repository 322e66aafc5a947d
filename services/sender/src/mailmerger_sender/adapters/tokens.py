"""Gmail access tokens from auth's internal route, cached per account until shortly before expiry.

Invariants:
- At most one request per account is in flight: concurrent sends of one account wait for it.
- ``invalidate`` drops a token only if it is still the cached one, so a send that was refused
  with an old token never throws away a newer token another send already fetched; the next fetch
  names the refused token, so auth refreshes rather than handing the same one out again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import msgspec

from mailmerger_shared.internal_api import AccessTokenRequest, GmailAccessToken
from mailmerger_shared.web.internal import InternalClient


class ReconnectRequired(Exception):
    """Google refused the account's refresh token: only the user reconnecting it helps."""


class AccountUnknown(Exception):
    """Auth knows no such Gmail account (it was disconnected or its user deleted)."""


class TokenUnavailable(Exception):
    """Auth could not hand out a token right now; a later attempt may succeed."""


class _Problem(msgspec.Struct):
    detail: str = ""
    reason: str | None = None


class AccessTokens:
    def __init__(
        self, client: InternalClient, *, refresh_margin: timedelta, clock: Callable[[], datetime]
    ) -> None:
        self._client = client
        self._margin = refresh_margin
        self._clock = clock
        self._cached: dict[int, GmailAccessToken] = {}
        self._refused: dict[int, str] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def get(self, account_id: int) -> GmailAccessToken:
        """A token valid for at least the refresh margin."""
        token = self._fresh(account_id)
        if token is not None:
            return token
        async with self._locks.setdefault(account_id, asyncio.Lock()):
            token = self._fresh(account_id)  # fetched by the send we waited for
            if token is None:
                token = await self._fetch(account_id, self._refused.pop(account_id, None))
                self._cached[account_id] = token
            return token

    def invalidate(self, account_id: int, access_token: str) -> None:
        """Gmail refused ``access_token``: forget it, and tell auth on the next fetch."""
        cached = self._cached.get(account_id)
        if cached is not None and cached.access_token == access_token:
            del self._cached[account_id]
            self._refused[account_id] = access_token

    def _fresh(self, account_id: int) -> GmailAccessToken | None:
        token = self._cached.get(account_id)
        if token is None or token.expires_at - self._margin <= self._clock():
            return None
        return token

    async def _fetch(self, account_id: int, refused: str | None) -> GmailAccessToken:
        path = f"/internal/auth/gmail-accounts/{account_id}/access-token"
        body = msgspec.json.encode(AccessTokenRequest(refused=refused))
        try:
            response = await self._client.request(
                "POST", path, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise TokenUnavailable(f"auth unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 200:
            try:
                return msgspec.json.decode(response.content, type=GmailAccessToken)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise TokenUnavailable(f"auth answered an unreadable token: {exc}") from exc
        problem = _problem(response.content)
        if response.status_code == 409 and problem.reason == "reconnect_required":
            raise ReconnectRequired(problem.detail or "Google refused the account's refresh token")
        if response.status_code == 404:
            raise AccountUnknown(problem.detail or f"auth knows no Gmail account {account_id}")
        raise TokenUnavailable(f"auth answered {response.status_code}: {problem.detail}")


def _problem(body: bytes) -> _Problem:
    try:
        return msgspec.json.decode(body, type=_Problem)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _Problem(detail=body[:200].decode("utf-8", "replace"))
