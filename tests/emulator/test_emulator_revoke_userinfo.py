"""Revocation, token expiry and the userinfo endpoints."""

from __future__ import annotations

import httpx

from tests.emulator.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    GMAIL_SEND,
    FakeClock,
    authorization_code,
    bearer,
    exchange_code,
    mint_token,
)

AUTH_ERROR = {
    "error": {
        "errors": [
            {
                "domain": "global",
                "reason": "authError",
                "message": "Invalid Credentials",
                "locationType": "header",
                "location": "Authorization",
            }
        ],
        "code": 401,
        "message": "Invalid Credentials",
    }
}


async def tokens(client: httpx.AsyncClient, **params: str) -> dict[str, str]:
    body: dict[str, str] = (await exchange_code(client, await authorization_code(client, **params))).json()
    return body


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )


async def test_revoke_then_refresh_is_invalid_grant(emulator: httpx.AsyncClient) -> None:
    """After revocation the refresh token answers "Token has been expired or revoked."."""
    issued = await tokens(emulator)
    revoked = await emulator.post("/revoke", data={"token": issued["refresh_token"]})
    assert (revoked.status_code, revoked.json()) == (200, {})
    answer = await refresh(emulator, issued["refresh_token"])
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }


async def test_revoking_refresh_token_revokes_its_access_tokens(emulator: httpx.AsyncClient) -> None:
    """Access tokens issued under a revoked refresh token stop working on Gmail."""
    issued = await tokens(emulator)
    await emulator.post("/revoke", data={"token": issued["refresh_token"]})
    answer = await emulator.get("/gmail/v1/users/me/profile", headers=bearer(issued["access_token"]))
    assert answer.status_code == 401
    assert answer.json() == AUTH_ERROR


async def test_revoking_access_token_revokes_the_grant(emulator: httpx.AsyncClient) -> None:
    """Google: revoking an access token also revokes its refresh token."""
    issued = await tokens(emulator)
    await emulator.post("/revoke", params={"token": issued["access_token"]})
    assert (await refresh(emulator, issued["refresh_token"])).json()["error"] == "invalid_grant"


async def test_revoking_unknown_token_is_invalid_token(emulator: httpx.AsyncClient) -> None:
    """An unknown or already revoked token gets 400 invalid_token."""
    answer = await emulator.post("/revoke", data={"token": "ya29.unknown"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_token"


async def test_expired_access_token_gets_gmail_auth_error(
    emulator: httpx.AsyncClient, clock: FakeClock
) -> None:
    """Past its TTL an access token gets Gmail's exact 401 authError body and a Bearer challenge."""
    token = await mint_token(emulator)
    clock.advance(3600)
    answer = await emulator.get("/gmail/v1/users/me/profile", headers=bearer(token))
    assert answer.status_code == 401
    assert answer.json() == AUTH_ERROR
    assert answer.headers["www-authenticate"].startswith("Bearer ")


async def test_access_token_works_until_its_ttl(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    """One second before expiry the token is still good."""
    token = await mint_token(emulator)
    clock.advance(3599)
    assert (await emulator.get("/gmail/v1/users/me/profile", headers=bearer(token))).status_code == 200


async def test_refresh_after_expiry_restores_access(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    """The refresh grant is how a client recovers from an expired access token."""
    issued = await tokens(emulator, scope=f"openid {GMAIL_SEND}")
    clock.advance(7200)
    fresh = (await refresh(emulator, issued["refresh_token"])).json()
    answer = await emulator.post(
        "/gmail/v1/users/me/messages/send", json={"raw": "eA"}, headers=bearer(fresh["access_token"])
    )
    assert answer.status_code == 400  # authenticated now; refused for its content
    assert answer.json()["error"]["errors"][0]["reason"] == "invalidArgument"


async def test_openid_userinfo_returns_claims(emulator: httpx.AsyncClient) -> None:
    """``/v1/userinfo`` and ``/oauth2/v3/userinfo`` give the OpenID claims."""
    issued = await tokens(emulator, login_hint="jane.doe@gmail.local")
    for path in ("/v1/userinfo", "/oauth2/v3/userinfo"):
        body = (await emulator.get(path, headers=bearer(issued["access_token"]))).json()
        assert body["email"] == "jane.doe@gmail.local"
        assert body["email_verified"] is True
        assert (body["name"], body["given_name"], body["family_name"]) == ("Jane Doe", "Jane", "Doe")
        assert body["sub"].isdigit()


async def test_v2_userinfo_uses_its_legacy_field_names(emulator: httpx.AsyncClient) -> None:
    """``/oauth2/v2/userinfo`` says id and verified_email."""
    issued = await tokens(emulator, login_hint="kim@gmail.local")
    body = (await emulator.get("/oauth2/v2/userinfo", headers=bearer(issued["access_token"]))).json()
    assert body["email"] == "kim@gmail.local"
    assert body["verified_email"] is True
    assert body["id"].isdigit()


async def test_userinfo_without_valid_token_is_401(emulator: httpx.AsyncClient) -> None:
    """The OpenID endpoint refuses a bad token in OAuth's error shape."""
    answer = await emulator.get("/v1/userinfo", headers=bearer("ya29.nope"))
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_request", "error_description": "Invalid Credentials"}


async def test_userinfo_needs_an_identity_scope(emulator: httpx.AsyncClient) -> None:
    """A token with only Gmail scopes can't read the profile: 403 insufficient scopes."""
    token = await mint_token(emulator, scopes=[GMAIL_SEND])
    answer = await emulator.get("/v1/userinfo", headers=bearer(token))
    assert answer.status_code == 403
    assert answer.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"
