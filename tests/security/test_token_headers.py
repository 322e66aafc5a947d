"""Answers that carry tokens are never stored by a browser or a proxy (Cache-Control: no-store),
and say nosniff, on v1 and the legacy routes alike; the legacy envelope is unchanged."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from mailmerger_shared.web.internal import caller_headers
from tests.support import mailed_token
from tests.system.harness import SystemUnderTest, User, unique_email

pytestmark = pytest.mark.system

PASSWORD = "correct horse battery staple"
ENVELOPE = {"success", "status_code", "message", "data"}


def assert_not_stored(response: httpx.Response) -> None:
    assert response.headers.get("cache-control") == "no-store", response.headers
    assert response.headers.get("x-content-type-options") == "nosniff", response.headers


@pytest.fixture
async def browser(system: SystemUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as client:
        yield client


async def test_v1_sign_up_sign_in_and_refresh_are_not_stored(
    browser: httpx.AsyncClient, system: SystemUnderTest
) -> None:
    """POST /v1/auth/signup, the confirmation, /login and /refresh answer with no-store."""
    email = unique_email("nostore")
    signup = await browser.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, "name": "N"})
    assert signup.status_code == 202, signup.text
    assert_not_stored(signup)
    async with httpx.AsyncClient(base_url=system.emulator_url) as emulator:
        token = await mailed_token(emulator, email, "/v1/auth/email/confirm")
    confirmed = await browser.post("/v1/auth/email-confirmations/confirm", json={"token": token})
    assert confirmed.status_code == 200, confirmed.text
    assert_not_stored(confirmed)
    login = await browser.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert_not_stored(login)
    refresh = await browser.post("/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]})
    assert refresh.status_code == 200, refresh.text
    assert_not_stored(refresh)


async def test_legacy_token_routes_are_not_stored_and_keep_their_envelope(browser: httpx.AsyncClient) -> None:
    """The legacy sign-up, login, refresh and renew answers: no-store, same envelope and data."""
    email = unique_email("legacy-nostore")
    signup = await browser.post("/api/auth/signup", json={"email": email, "password": PASSWORD, "name": "L"})
    assert signup.status_code in (200, 201), signup.text
    assert_not_stored(signup)
    assert set(signup.json()) == ENVELOPE
    assert set(signup.json()["data"]) == {"jwt_token", "refresh_token"}
    refresh_token = signup.json()["data"]["refresh_token"]

    login = await browser.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    assert_not_stored(login)
    assert set(login.json()["data"]) == {"jwt_token", "user_name"}

    bearer = {"Authorization": f"Bearer {refresh_token}"}
    refreshed = await browser.get("/api/auth/refresh-jwt-token", headers=bearer)
    assert refreshed.status_code == 200, refreshed.text
    assert_not_stored(refreshed)
    assert set(refreshed.json()["data"]) == {"jwt_token"}

    renewed = await browser.get("/api/auth/renew-refresh-and-jwt-token", headers=bearer)
    assert renewed.status_code == 200, renewed.text
    assert_not_stored(renewed)
    assert set(renewed.json()["data"]) == {"jwt_token", "refresh_token", "user_name"}


async def _through_google(base_url: str, start: str, gmail: str) -> httpx.Response:
    """Open ``start`` in a fresh browser choosing Google account ``gmail``; our callback's answer."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as browser:
        response = await browser.get(start)
        assert response.status_code == 302, response.text
        google = urlsplit(response.headers["location"])
        query = {**{k: v[0] for k, v in parse_qs(google.query).items()}, "login_hint": gmail}
        response = await browser.get(urlunsplit(google._replace(query=urlencode(query))))
        assert response.status_code in (302, 303), response.text
        return await browser.get(response.headers["location"])


async def test_v1_google_callback_is_not_stored(system: SystemUnderTest, user: User) -> None:
    """The v1 Google callback's redirect (tokens in its fragment) is no-store."""
    ticket = await user.client.post("/v1/auth/google/connect-tickets")
    assert ticket.status_code == 201, ticket.text
    gmail = f"nostore-{uuid.uuid4().hex[:8]}@gmail.local"
    callback = await _through_google(system.base_url, ticket.json()["url"], gmail)
    assert callback.status_code == 302, callback.text
    assert "#at=" in callback.headers["location"]
    assert_not_stored(callback)


async def test_legacy_google_callback_is_not_stored(system: SystemUnderTest) -> None:
    """The legacy oauth2callback's redirect to /oauth-finish#at=…&rt=… is no-store."""
    gmail = f"legacy-nostore-{uuid.uuid4().hex[:8]}@gmail.local"
    start = "/api/oauth/gmail-authorize?" + urlencode({"purpose": "signup"})
    callback = await _through_google(system.base_url, start, gmail)
    assert callback.status_code == 302, callback.text
    assert "/oauth-finish#at=" in callback.headers["location"]
    assert_not_stored(callback)


async def test_internal_access_token_answer_is_not_stored(
    system: SystemUnderTest, sending_user: User
) -> None:
    """The sender's Gmail access token comes back with no-store."""
    async with httpx.AsyncClient(base_url=system.internal_url, timeout=30) as internal:
        response = await internal.post(
            f"/internal/auth/gmail-accounts/{sending_user.account_id}/access-token",
            json={},
            headers=caller_headers("sender", system.credentials["sender"]),
        )
    assert response.status_code == 200, response.text
    assert_not_stored(response)


async def test_public_keys_keep_their_own_caching(browser: httpx.AsyncClient) -> None:
    """The JWKS (public keys, no secret) stays cacheable as auth chose, with nosniff."""
    response = await browser.get("/v1/auth/.well-known/jwks.json")
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["x-content-type-options"] == "nosniff"
