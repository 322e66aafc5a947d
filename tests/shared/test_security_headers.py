"""Every response of a service app carries nosniff and, unless its route says otherwise, no-store;
HSTS when the public URL is https."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Response, get

from mailmerger_shared.settings import HttpSettings, JwtSettings
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import token_verifier
from mailmerger_shared.web.probes import Probes, probe_app
from tests.tokens import TestSigner

SIGNER = TestSigner()


@get("/v1/session", opt={"exclude_from_auth": True})
async def session() -> dict[str, str]:
    return {"access_token": "a.b.c"}


@get("/v1/public-keys", opt={"exclude_from_auth": True})
async def public_keys() -> Response[dict[str, list[str]]]:
    return Response({"keys": []}, headers={"Cache-Control": "public, max-age=60"})


@get("/v1/boom", opt={"exclude_from_auth": True})
async def boom() -> None:
    raise ZeroDivisionError


@get("/v1/private")
async def private() -> None:
    return None


def client_for(public_url: str) -> httpx.AsyncClient:
    app = service_app(
        name="test",
        route_handlers=[session, public_keys, boom, private],
        http=HttpSettings(public_url=public_url),
        verifier=token_verifier(JwtSettings(), SIGNER.jwks),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for("http://127.0.0.1:8080") as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/session", 200),
        ("GET", "/v1/boom", 500),
        ("GET", "/v1/private", 401),
        ("GET", "/v1/nowhere", 404),
        ("POST", "/v1/session", 405),
        ("GET", "/health", 200),
    ],
)
async def test_every_answer_says_nosniff_and_no_store(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    """Successes, errors and the framework's own answers all carry both headers."""
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers


async def test_a_preflight_says_nosniff(client: httpx.AsyncClient) -> None:
    """The CORS preflight the legacy client makes carries nosniff too."""
    response = await client.options(
        "/v1/session",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code in (200, 204)
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_route_that_chooses_its_caching_keeps_it(client: httpx.AsyncClient) -> None:
    """A route's own Cache-Control (the public JWKS) is not overridden."""
    response = await client.get("/v1/public-keys")
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_hsts_when_the_public_url_is_https() -> None:
    """Served at an https public URL, every answer (errors too) says Strict-Transport-Security."""
    async with client_for("https://mail.example.org") as client:
        for path in ("/v1/session", "/v1/boom", "/v1/nowhere"):
            response = await client.get(path)
            assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_worker_probes_say_nosniff() -> None:
    """A worker's probe server (/health, /ready, /metrics) carries the same headers."""
    app = probe_app(Probes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
