"""``POST /token``: the authorization-code grant with PKCE, the refresh grant, client auth."""

from __future__ import annotations

import base64

import httpx
import jwt

from tests.emulator.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    GMAIL_READONLY,
    GMAIL_SEND,
    REDIRECT_URI,
    USERINFO_EMAIL,
    USERINFO_PROFILE,
    FakeClock,
    authorization_code,
    exchange_code,
    pkce_pair,
)


async def test_code_exchange_returns_google_token_response(emulator: httpx.AsyncClient) -> None:
    """An offline first consent yields access, refresh and ID tokens, Bearer, ~1 h, and no caching."""
    answer = await exchange_code(emulator, await authorization_code(emulator))
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].startswith("ya29.")
    assert body["refresh_token"].startswith("1//")
    assert "id_token" in body
    assert "no-store" in answer.headers["cache-control"]


async def test_granted_scopes_use_google_full_names(emulator: httpx.AsyncClient) -> None:
    """``email`` and ``profile`` come back as the userinfo.* URLs, space-separated."""
    body = (await exchange_code(emulator, await authorization_code(emulator))).json()
    assert set(body["scope"].split()) == {"openid", USERINFO_EMAIL, USERINFO_PROFILE, GMAIL_SEND}


async def test_id_token_carries_google_claims(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    """iss, aud, azp, sub, email, email_verified, name, nonce, at_hash, iat and exp are set."""
    code = await authorization_code(emulator, login_hint="ivy@gmail.local", nonce="nonce-1")
    body = (await exchange_code(emulator, code)).json()
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["iss"] == "http://127.0.0.1:8090"
    assert claims["aud"] == claims["azp"] == CLIENT_ID
    assert claims["email"] == "ivy@gmail.local"
    assert claims["email_verified"] is True
    assert claims["name"] == "Ivy"
    assert claims["nonce"] == "nonce-1"
    assert claims["sub"].isdigit()
    assert len(claims["sub"]) == 21
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] == int(clock.now) + 3600
    assert claims["at_hash"]


async def test_pkce_s256_verifier_redeems_the_code(emulator: httpx.AsyncClient) -> None:
    """The S256 verifier matching the challenge redeems the code."""
    verifier, challenge = pkce_pair()
    code = await authorization_code(emulator, code_challenge=challenge, code_challenge_method="S256")
    assert (await exchange_code(emulator, code, code_verifier=verifier)).status_code == 200


async def test_pkce_verifier_mismatch_is_invalid_grant(emulator: httpx.AsyncClient) -> None:
    """A verifier that doesn't hash to the challenge is refused."""
    _, challenge = pkce_pair()
    code = await authorization_code(emulator, code_challenge=challenge, code_challenge_method="S256")
    answer = await exchange_code(emulator, code, code_verifier="x" * 50)
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "error_description": "Invalid code verifier."}


async def test_pkce_missing_verifier_is_invalid_grant(emulator: httpx.AsyncClient) -> None:
    """A code issued with a challenge can't be redeemed without a verifier."""
    _, challenge = pkce_pair()
    code = await authorization_code(emulator, code_challenge=challenge, code_challenge_method="S256")
    answer = await exchange_code(emulator, code)
    assert answer.json() == {"error": "invalid_grant", "error_description": "Missing code verifier."}


async def test_pkce_plain_method_compares_verbatim(emulator: httpx.AsyncClient) -> None:
    """With the plain method the verifier must equal the challenge."""
    code = await authorization_code(emulator, code_challenge="plain-challenge-" + "a" * 30)
    assert (
        await exchange_code(emulator, code, code_verifier="plain-challenge-" + "a" * 30)
    ).status_code == 200


async def test_code_is_single_use(emulator: httpx.AsyncClient) -> None:
    """A redeemed code is spent: the second exchange is invalid_grant."""
    code = await authorization_code(emulator)
    assert (await exchange_code(emulator, code)).status_code == 200
    again = await exchange_code(emulator, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_code_expires_after_ten_minutes(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    """A code older than 10 minutes is invalid_grant."""
    code = await authorization_code(emulator)
    clock.advance(601)
    answer = await exchange_code(emulator, code)
    assert answer.json() == {"error": "invalid_grant", "error_description": "Bad Request"}


async def test_malformed_code_is_invalid_grant(emulator: httpx.AsyncClient) -> None:
    """A code the emulator never issued says so."""
    answer = await exchange_code(emulator, "not-a-code")
    assert answer.json() == {"error": "invalid_grant", "error_description": "Malformed auth code."}


async def test_redirect_uri_must_equal_the_authorize_one(emulator: httpx.AsyncClient) -> None:
    """The token call must repeat the authorize call's redirect URI exactly."""
    code = await authorization_code(emulator)
    answer = await exchange_code(
        emulator, code, redirect_uri="http://127.0.0.1:8080/api/oauth/oauth2callback"
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "redirect_uri_mismatch"


async def test_client_secret_basic_authenticates(emulator: httpx.AsyncClient) -> None:
    """Client credentials may come in an HTTP Basic header instead of the form."""
    code = await authorization_code(emulator)
    credentials = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    answer = await emulator.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        headers={"Authorization": f"Basic {credentials}"},
    )
    assert answer.status_code == 200


async def test_wrong_client_secret_is_401_invalid_client(emulator: httpx.AsyncClient) -> None:
    """A wrong secret is refused with 401 invalid_client."""
    answer = await exchange_code(emulator, await authorization_code(emulator), client_secret="wrong")
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid_client", "error_description": "Unauthorized"}


async def test_unknown_client_is_401_invalid_client(emulator: httpx.AsyncClient) -> None:
    """An unknown client id is refused with Google's "not found" description."""
    answer = await exchange_code(emulator, "4/0whatever", client_id="nobody")
    assert answer.status_code == 401
    assert answer.json() == {
        "error": "invalid_client",
        "error_description": "The OAuth client was not found.",
    }


async def test_unsupported_grant_type_is_refused(emulator: httpx.AsyncClient) -> None:
    """Only authorization_code and refresh_token grants exist here."""
    answer = await emulator.post(
        "/token", data={"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "unsupported_grant_type",
        "error_description": "Invalid grant_type: password",
    }


async def test_missing_code_is_invalid_request(emulator: httpx.AsyncClient) -> None:
    """The authorization-code grant names its missing parameter."""
    answer = await exchange_code(emulator, "")
    assert answer.json() == {
        "error": "invalid_request",
        "error_description": "Missing required parameter: code",
    }


async def test_refresh_grant_issues_a_new_access_token(emulator: httpx.AsyncClient) -> None:
    """A refresh token yields a fresh access token with the same scopes and no new refresh token."""
    first = (await exchange_code(emulator, await authorization_code(emulator))).json()
    answer = await emulator.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    body = answer.json()
    assert answer.status_code == 200
    assert body["access_token"] != first["access_token"]
    assert set(body["scope"].split()) == set(first["scope"].split())
    assert "refresh_token" not in body
    assert "id_token" in body


async def test_online_access_gets_no_refresh_token(emulator: httpx.AsyncClient) -> None:
    """Without access_type=offline there is no refresh token."""
    body = (await exchange_code(emulator, await authorization_code(emulator, access_type="online"))).json()
    assert "refresh_token" not in body


async def test_repeat_consent_gets_refresh_token_only_with_prompt_consent(
    emulator: httpx.AsyncClient,
) -> None:
    """Google returns a refresh token on first consent; again only when prompt=consent forces it."""
    await exchange_code(emulator, await authorization_code(emulator))
    again = (await exchange_code(emulator, await authorization_code(emulator))).json()
    forced = (await exchange_code(emulator, await authorization_code(emulator, prompt="consent"))).json()
    assert "refresh_token" not in again
    assert "refresh_token" in forced


async def test_include_granted_scopes_adds_earlier_grants(emulator: httpx.AsyncClient) -> None:
    """Incremental authorization: the new token also carries the scopes granted before."""
    await exchange_code(emulator, await authorization_code(emulator, scope=f"openid {GMAIL_SEND}"))
    code = await authorization_code(emulator, scope=GMAIL_READONLY, include_granted_scopes="true")
    body = (await exchange_code(emulator, code)).json()
    assert set(body["scope"].split()) == {"openid", GMAIL_SEND, GMAIL_READONLY}


async def test_grant_keeps_at_most_100_refresh_tokens(emulator: httpx.AsyncClient) -> None:
    """The 101st refresh token of a user and client silently invalidates the oldest."""
    tokens = []
    for _ in range(101):
        minted = await emulator.post(
            "/_emulator/tokens", json={"email": "many@gmail.local", "scopes": [GMAIL_SEND]}
        )
        tokens.append(minted.json()["refresh_token"])
    form = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    oldest = await emulator.post("/token", data={**form, "refresh_token": tokens[0]})
    second = await emulator.post("/token", data={**form, "refresh_token": tokens[1]})
    assert oldest.json()["error"] == "invalid_grant"
    assert second.status_code == 200
