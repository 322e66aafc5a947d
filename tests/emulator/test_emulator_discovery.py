"""Discovery, JWKS and settings: what a client reads before it signs anyone in."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from litestar.types import Receive, Scope, Send

from mailmerger_emulator.google.app import create_app
from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_shared.settings import load
from tests.emulator.helpers import (
    CLIENT_ID,
    FakeClock,
    MakeEmulator,
    authorization_code,
    authorize_params,
    emulator_settings,
    exchange_code,
    redirect_query,
)


async def test_discovery_endpoints_derive_from_public_url(make_emulator: MakeEmulator) -> None:
    """Every URL in the discovery document is built from ``public_url``, prefix included."""
    client = await make_emulator(public_url="http://127.0.0.1:8080/google/")
    document = (await client.get("/.well-known/openid-configuration")).json()
    assert document["issuer"] == "http://127.0.0.1:8080/google"
    assert document["authorization_endpoint"] == "http://127.0.0.1:8080/google/o/oauth2/v2/auth"
    assert document["token_endpoint"] == "http://127.0.0.1:8080/google/token"
    assert document["userinfo_endpoint"] == "http://127.0.0.1:8080/google/v1/userinfo"
    assert document["revocation_endpoint"] == "http://127.0.0.1:8080/google/revoke"
    assert document["jwks_uri"] == "http://127.0.0.1:8080/google/oauth2/v3/certs"


async def test_a_browser_url_serves_what_a_browser_opens(make_emulator: MakeEmulator) -> None:
    """With ``browser_url`` (compose: services say google:8090, a browser localhost:8090), the
    authorization endpoint and the consent form use it; everything services call stays public_url."""
    client = await make_emulator(public_url="http://google:8090", browser_url="http://localhost:8090/")
    document = (await client.get("/.well-known/openid-configuration")).json()
    assert document["authorization_endpoint"] == "http://localhost:8090/o/oauth2/v2/auth"
    assert document["issuer"] == "http://google:8090"
    assert document["token_endpoint"] == "http://google:8090/token"
    assert document["jwks_uri"] == "http://google:8090/oauth2/v3/certs"
    consent = await client.get("/o/oauth2/v2/auth", params=authorize_params())
    assert consent.status_code == 200, consent.text
    assert 'action="http://localhost:8090/o/oauth2/consent"' in consent.text


async def test_discovery_advertises_pkce_and_client_authentication(emulator: httpx.AsyncClient) -> None:
    """PKCE methods and both client-secret styles are advertised as Google does."""
    document = (await emulator.get("/.well-known/openid-configuration")).json()
    assert document["code_challenge_methods_supported"] == ["plain", "S256"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_post",
        "client_secret_basic",
    }
    assert {"openid", "email", "profile"} <= set(document["scopes_supported"])
    assert {"sub", "email", "email_verified", "name", "nonce"} <= set(document["claims_supported"])


async def test_id_token_verifies_against_published_jwks(emulator: httpx.AsyncClient) -> None:
    """The ID token's signature checks out with the key ``/oauth2/v3/certs`` publishes under its kid."""
    code = await authorization_code(emulator, login_hint="jwks@gmail.local")
    id_token = (await exchange_code(emulator, code)).json()["id_token"]
    jwks = (await emulator.get("/oauth2/v3/certs")).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(id_token)["kid"]]
    claims = jwt.decode(
        id_token, key=key, algorithms=["RS256"], audience=CLIENT_ID, issuer="http://127.0.0.1:8090"
    )
    assert claims["email"] == "jwks@gmail.local"


def test_settings_read_registered_clients_from_json() -> None:
    """``MM_EMULATOR_CLIENTS`` is a JSON list of clients with their exact redirect URIs."""
    settings = load(
        GoogleEmulatorSettings,
        {
            "MM_EMULATOR_CLIENTS": '[{"client_id": "c1", "client_secret": "s1", "redirect_uris": ["http://x/cb"]}]',
            "MM_EMULATOR_AUTO_APPROVE": "true",
        },
    )
    assert settings.clients[0].client_id == "c1"
    assert settings.clients[0].redirect_uris == ["http://x/cb"]
    assert settings.auto_approve is True


def test_settings_defaults_match_the_brief() -> None:
    """Defaults: the dev client, quotas on at 15,000 units/min and 2,000 sends/day, 35 MB messages."""
    settings = load(GoogleEmulatorSettings, {})
    assert settings.public_url == "http://127.0.0.1:8090"
    assert settings.clients[0].client_id == "mailmerger-dev"
    assert "http://127.0.0.1:8080/api/oauth/oauth2callback" in settings.clients[0].redirect_uris
    assert (settings.quota_units_per_minute, settings.daily_send_cap) == (15_000, 2_000)
    assert settings.quotas_enabled is True
    assert settings.auto_approve is False
    assert settings.access_token_ttl_seconds == 3600
    assert settings.max_message_bytes == 35 * 1024 * 1024


async def test_works_mounted_under_a_path_prefix(clock: FakeClock, signing_key: RSAPrivateKey) -> None:
    """Behind a prefix-stripping router every emitted URL keeps the prefix, and the flow still works."""
    settings = emulator_settings(public_url="http://127.0.0.1:8080/google")
    app = create_app(settings, clock=clock, signing_key=signing_key)

    async def prefix_router(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"].removeprefix("/google") or "/"
        await app({**scope, "path": path, "root_path": "/google"}, receive, send)

    transport = httpx.ASGITransport(app=prefix_router)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
        page = await client.get("/google/o/oauth2/v2/auth", params=authorize_params())
        action = re.search(r'action="([^"]+)"', page.text)
        consent_id = re.search(r'name=consent_id value="([^"]+)"', page.text)
        assert action is not None
        assert consent_id is not None
        assert action.group(1) == "http://127.0.0.1:8080/google/o/oauth2/consent"
        decision = await client.post(
            urlsplit(action.group(1)).path,
            data={
                "consent_id": consent_id.group(1),
                "account": "new",
                "new_email": "m@gmail.local",
                "decision": "approve",
            },
        )
        assert decision.status_code == 302
        assert "code" in redirect_query(decision)
