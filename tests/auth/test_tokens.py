"""Access and refresh tokens over HTTP: claims, JWKS, the JWT negative suite against auth's own
protected routes, rotation, reuse detection and the absolute session lifetime."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import text

from mailmerger_auth.crypto import Sealer, signing_key_context
from tests.auth.support import Harness, bearer, claims, header, sign_up


async def _current_key(auth: Harness) -> tuple[str, Ed25519PrivateKey]:
    """Auth's signing key, unsealed the way auth does: lets a test forge any claim set."""
    async with auth.engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT kid, private_key, encryption_key_id FROM auth.signing_keys "
                    "WHERE activates_at <= now() ORDER BY activates_at DESC LIMIT 1"
                )
            )
        ).one()
    sealer = Sealer.from_settings(auth.settings.encryption)
    raw = sealer.open(row.private_key, key_id=row.encryption_key_id, context=signing_key_context(row.kid))
    return row.kid, Ed25519PrivateKey.from_private_bytes(raw)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _negative_tokens(auth: Harness) -> dict[str, str]:
    session = await sign_up(auth)
    valid = session["access_token"]
    kid, key = await _current_key(auth)
    good = claims(valid)
    attacker = Ed25519PrivateKey.generate()
    attacker_jwk = {**json.loads(OKPAlgorithm.to_jwk(attacker.public_key())), "kid": kid}
    x = (await auth.client.get("/v1/auth/.well-known/jwks.json")).json()["keys"][0]["x"]
    public_raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
    now = int(time.time())

    def signed(**overrides: Any) -> str:
        return jwt.encode({**good, **overrides}, key, algorithm="EdDSA", headers={"kid": kid})

    head, _, signature = valid.split(".")
    return {
        "alg none": f"{_b64({'alg': 'none', 'kid': kid})}.{_b64(good)}.",
        "HS256 signed with the public key": jwt.encode(
            good, public_raw, algorithm="HS256", headers={"kid": kid}
        ),
        "expired": signed(iat=now - 3600, exp=now - 1800),
        "future nbf": signed(nbf=now + 3600),
        "wrong issuer": signed(iss="someone-else"),
        "wrong audience": signed(aud="another-app"),
        "unknown kid": jwt.encode(good, attacker, algorithm="EdDSA", headers={"kid": "nope"}),
        "malicious kid": jwt.encode(good, attacker, algorithm="EdDSA", headers={"kid": "' OR '1'='1"}),
        "path traversal kid": jwt.encode(
            good, attacker, algorithm="EdDSA", headers={"kid": "../../etc/passwd"}
        ),
        "embedded jwk": jwt.encode(
            good, attacker, algorithm="EdDSA", headers={"kid": kid, "jwk": attacker_jwk}
        ),
        "jku": jwt.encode(good, attacker, algorithm="EdDSA", headers={"kid": kid, "jku": "http://evil/jwks"}),
        "tampered payload": f"{head}.{_b64({**good, 'sub': str(int(good['sub']) + 1)})}.{signature}",
        "refresh token used as access token": session["refresh_token"],
        "refresh token relabelled as access": signed(typ="refresh"),
        "garbage": "not-a-jwt",
    }


NEGATIVE_CASES = [
    "alg none",
    "HS256 signed with the public key",
    "expired",
    "future nbf",
    "wrong issuer",
    "wrong audience",
    "unknown kid",
    "malicious kid",
    "path traversal kid",
    "embedded jwk",
    "jku",
    "tampered payload",
    "refresh token used as access token",
    "refresh token relabelled as access",
    "garbage",
]


@pytest.mark.parametrize("case", NEGATIVE_CASES)
async def test_bad_tokens_are_refused_by_auths_own_routes(auth: Harness, case: str) -> None:
    """Every forged, expired, misdirected or mistyped token gets 401 problem+json from /v1/auth/me."""
    token = (await _negative_tokens(auth))[case]
    for method, path in (("GET", "/v1/auth/me"), ("POST", "/v1/auth/logout")):
        response = await auth.client.request(method, path, headers=bearer(token))
        assert response.status_code == 401, (case, path)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_forged_claims_signed_with_auths_key_are_accepted(auth: Harness) -> None:
    """The negative suite's forgeries fail for their flaw alone: the same key with sound claims works."""
    session = await sign_up(auth)
    kid, key = await _current_key(auth)
    fresh = {**claims(session["access_token"]), "jti": uuid.uuid4().hex}  # a token auth never issued
    token = jwt.encode(fresh, key, algorithm="EdDSA", headers={"kid": kid})
    assert (await auth.client.get("/v1/auth/me", headers=bearer(token))).status_code == 200


async def test_access_token_carries_the_required_claims(auth: Harness) -> None:
    """EdDSA with kid; iss, aud, sub, iat, exp within 15 minutes, jti and typ=access."""
    session = await sign_up(auth)
    access = session["access_token"]
    assert header(access)["alg"] == "EdDSA"
    assert header(access)["kid"]
    payload = claims(access)
    assert payload["iss"] == "mailmerger-auth"
    assert payload["aud"] == "mailmerger"
    assert payload["sub"] == str(session["user_id"])
    assert payload["typ"] == "access"
    assert 0 < payload["exp"] - payload["iat"] <= 15 * 60
    assert uuid.UUID(payload["jti"]).hex == payload["jti"]


async def test_refresh_token_is_a_jwt_addressed_to_auth_alone(auth: Harness) -> None:
    """The refresh token has typ=refresh, a numeric exp the client can read, and auth as audience."""
    session = await sign_up(auth)
    payload = claims(session["refresh_token"])
    assert payload["typ"] == "refresh"
    assert isinstance(payload["exp"], int)
    assert payload["aud"] == "mailmerger-auth"
    assert payload["sid"] == claims(session["access_token"])["sid"]


async def test_jwks_publishes_the_key_that_verifies_access_tokens(auth: Harness) -> None:
    """The public JWKS needs no token and verifies an issued access token with PyJWT."""
    session = await sign_up(auth)
    document = (await auth.client.get("/v1/auth/.well-known/jwks.json")).json()
    keys = {entry["kid"]: entry for entry in document["keys"]}
    entry = keys[header(session["access_token"])["kid"]]
    assert entry["kty"] == "OKP"
    assert entry["crv"] == "Ed25519"
    assert "d" not in entry
    key = jwt.PyJWK(entry, algorithm="EdDSA")
    decoded = jwt.decode(session["access_token"], key.key, algorithms=["EdDSA"], audience="mailmerger")
    assert decoded["sub"] == str(session["user_id"])


async def test_refresh_rotates_the_refresh_token(auth: Harness) -> None:
    """A refresh answers a new pair; the new refresh token works."""
    session = await sign_up(auth)
    first = await auth.client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert first.status_code == 200
    renewed = first.json()
    assert renewed["refresh_token"] != session["refresh_token"]
    assert (await auth.client.get("/v1/auth/me", headers=bearer(renewed["access_token"]))).status_code == 200
    second = await auth.client.post("/v1/auth/refresh", json={"refresh_token": renewed["refresh_token"]})
    assert second.status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_family_for_good(auth: Harness) -> None:
    """A spent token replayed after the reuse grace is 401, the family's current token dies too, and
    the DB keeps the revocation."""
    session = await sign_up(auth)
    renewed = (
        await auth.client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    ).json()
    auth.clock.shift(timedelta(seconds=31))  # past the 30 s grace for a second tab

    replay = await auth.client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert replay.status_code == 401
    current = await auth.client.post("/v1/auth/refresh", json={"refresh_token": renewed["refresh_token"]})
    assert current.status_code == 401

    async with auth.engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT revoked_at, revoked_reason FROM auth.refresh_families WHERE id = :id"),
                {"id": uuid.UUID(claims(session["refresh_token"])["sid"])},
            )
        ).one()
    assert row.revoked_at is not None
    assert row.revoked_reason == "refresh_token_reused"


async def test_two_tabs_refreshing_at_once_both_keep_the_session(auth: Harness) -> None:
    """Two refreshes racing with the same token: one rotates, the other (within the reuse grace) gets
    the current token again; both tokens then work once, as one: the first use rotates."""
    session = await sign_up(auth)
    answers = await asyncio.gather(
        *(
            auth.client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
            for _ in range(2)
        )
    )
    assert [answer.status_code for answer in answers] == [200, 200]
    first, second = (answer.json()["refresh_token"] for answer in answers)
    assert claims(first)["jti"] == claims(second)["jti"]  # one usable token, signed twice
    later = await auth.client.post("/v1/auth/refresh", json={"refresh_token": first})
    assert later.status_code == 200
    auth.clock.shift(timedelta(seconds=31))
    stale = await auth.client.post("/v1/auth/refresh", json={"refresh_token": second})
    assert stale.status_code == 401  # replaced over 30 s ago: a reuse, the session is revoked
    renewal = {"refresh_token": later.json()["refresh_token"]}
    assert (await auth.client.post("/v1/auth/refresh", json=renewal)).status_code == 401


async def test_an_expired_refresh_token_does_not_refresh(auth: Harness) -> None:
    """/v1/auth/refresh refuses a refresh token past its exp (only the legacy renewal accepts one)."""
    auth.clock.shift(-timedelta(days=8))
    session = await sign_up(auth)
    auth.clock.reset()
    response = await auth.client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_no_renewal_outlives_the_absolute_session_lifetime(auth: Harness) -> None:
    """Renewals never reach past 30 days after sign-in: the last refresh token ends with the session,
    and after that even the current token is refused."""
    auth.clock.shift(-timedelta(days=31))
    session = await sign_up(auth)
    started = claims(session["refresh_token"])["iat"]
    auth.clock.shift(timedelta(days=27))
    renewed = await auth.client.get(
        "/api/auth/renew-refresh-and-jwt-token", headers=bearer(session["refresh_token"])
    )
    assert renewed.status_code == 200
    token = renewed.json()["data"]["refresh_token"]
    assert claims(token)["exp"] == started + 30 * 24 * 3600  # capped by the session, not 7 more days
    auth.clock.reset()
    response = await auth.client.get("/api/auth/renew-refresh-and-jwt-token", headers=bearer(token))
    assert response.status_code == 401
    assert "lifetime" in response.json()["message"]
