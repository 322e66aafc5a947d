"""Forged, stale and misused bearer tokens are refused by every service that serves users.

Each service verifies tokens itself (offline, against auth's JWKS), so each is attacked on its own
protected route. The sender serves no user route (probes and metrics only), so it has none.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from tests.security.forge import Forge, b64url, unsigned
from tests.system.harness import SystemUnderTest, User, sign_up

pytestmark = pytest.mark.system

PROTECTED = {
    "auth": "/v1/auth/me",
    "templates": "/v1/templates/",
    "queue": "/v1/emails/",
    "storage": "/v1/attachments/",
}


@pytest.fixture(scope="module")
async def victim(system: SystemUnderTest) -> AsyncIterator[User]:
    signed_up = await sign_up(system, "victim")
    yield signed_up
    await signed_up.client.aclose()


@pytest.fixture(scope="module")
async def forge(system: SystemUnderTest, victim: User) -> Forge:
    jwks = (await victim.client.get("/v1/auth/.well-known/jwks.json")).json()
    return await Forge.of_running_auth(system.env, jwks)


def alg_none(forge: Forge, user: User) -> str:
    return unsigned({"alg": "none", "typ": "JWT", "kid": forge.kid}, forge.claims(user.user_id))


def hs256_with_the_public_key(forge: Forge, user: User) -> str:
    """The classic key-confusion attack: HMAC keyed with the published public key."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": forge.kid}).encode())
    payload = b64url(json.dumps(forge.claims(user.user_id)).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(forge.public_x.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def expired(forge: Forge, user: User) -> str:
    now = int(time.time())
    return forge.sign(forge.claims(user.user_id, iat=now - 7200, exp=now - 3600))


def not_yet_valid(forge: Forge, user: User) -> str:
    return forge.sign(forge.claims(user.user_id, nbf=int(time.time()) + 3600))


def wrong_issuer(forge: Forge, user: User) -> str:
    return forge.sign(forge.claims(user.user_id, iss="https://accounts.google.com"))


def wrong_audience(forge: Forge, user: User) -> str:
    return forge.sign(forge.claims(user.user_id, aud="someone-else"))


def unknown_kid(forge: Forge, user: User) -> str:
    return jwt.encode(
        forge.claims(user.user_id), forge.private_key, algorithm="EdDSA", headers={"kid": "no-such-key"}
    )


def malicious_kid(forge: Forge, user: User) -> str:
    kid = "../../../../etc/passwd' OR '1'='1"
    return jwt.encode(forge.claims(user.user_id), forge.private_key, algorithm="EdDSA", headers={"kid": kid})


def attacker_key_with_embedded_jwk(forge: Forge, user: User) -> str:
    attacker = Ed25519PrivateKey.generate()
    jwk = json.loads(OKPAlgorithm.to_jwk(attacker.public_key()))
    return jwt.encode(
        forge.claims(user.user_id), attacker, algorithm="EdDSA", headers={"kid": forge.kid, "jwk": jwk}
    )


def attacker_key_with_jku(forge: Forge, user: User) -> str:
    attacker = Ed25519PrivateKey.generate()
    return jwt.encode(
        forge.claims(user.user_id),
        attacker,
        algorithm="EdDSA",
        headers={"kid": forge.kid, "jku": "http://127.0.0.1:1/jwks.json"},
    )


def tampered_payload(forge: Forge, user: User) -> str:
    header, _, signature = forge.valid(user.user_id).split(".")
    payload = b64url(json.dumps(forge.claims(user.user_id + 1)).encode())
    return f"{header}.{payload}.{signature}"


def refresh_token_as_access_token(forge: Forge, user: User) -> str:
    return user.refresh_token


def access_claims_typed_refresh(forge: Forge, user: User) -> str:
    return forge.sign(forge.claims(user.user_id, typ="refresh"))


def without_expiry(forge: Forge, user: User) -> str:
    return forge.sign(forge.claims(user.user_id, exp=None))


ATTACKS: list[Callable[[Forge, User], str]] = [
    alg_none,
    hs256_with_the_public_key,
    expired,
    not_yet_valid,
    wrong_issuer,
    wrong_audience,
    unknown_kid,
    malicious_kid,
    attacker_key_with_embedded_jwk,
    attacker_key_with_jku,
    tampered_payload,
    refresh_token_as_access_token,
    access_claims_typed_refresh,
    without_expiry,
]


async def get(system: SystemUnderTest, path: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=10.0) as client:
        return await client.get(path, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("service", PROTECTED)
async def test_a_token_signed_like_auth_signs_is_accepted(
    system: SystemUnderTest, forge: Forge, victim: User, service: str
) -> None:
    """The control: a token made with auth's real key and claims passes (so refusals are the flaw's)."""
    response = await get(system, PROTECTED[service], forge.valid(victim.user_id))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("service", PROTECTED)
@pytest.mark.parametrize("attack", ATTACKS, ids=lambda attack: attack.__name__)
async def test_flawed_token_is_refused_with_401(
    system: SystemUnderTest,
    forge: Forge,
    victim: User,
    service: str,
    attack: Callable[[Forge, User], str],
) -> None:
    """Each flawed token is a 401 problem on each service's protected route."""
    response = await get(system, PROTECTED[service], attack(forge, victim))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
