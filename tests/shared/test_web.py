"""The web kit every service uses: JWT verification, problem+json, request ids, CORS, probes."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from litestar import get
from litestar.datastructures import State
from litestar.params import FromPath

from mailmerger_shared.settings import HttpSettings, JwtSettings
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.auth import requires_caller, token_verifier
from mailmerger_shared.web.deps import CurrentUser
from mailmerger_shared.web.internal import caller_headers
from mailmerger_shared.web.problems import NotFound
from tests.tokens import TestSigner

SIGNER = TestSigner()
ORIGIN = "http://localhost:5173"


@get("/v1/things/{thing_id:int}")
async def get_thing(thing_id: FromPath[int], principal: CurrentUser) -> dict[str, Any]:
    if thing_id == 404:
        raise NotFound(f"thing {thing_id} does not exist")
    return {"thing": thing_id, "owner": principal.user_id}


@get("/v1/boom")
async def boom() -> None:
    raise ZeroDivisionError


@get(
    "/internal/things",
    opt={"exclude_from_auth": True},
    guards=[requires_caller("queue", credentials={"queue": "s3cret"})],
)
async def internal_things() -> dict[str, bool]:
    return {"internal": True}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async def always_ok() -> None:
        return None

    app = service_app(
        name="test",
        route_handlers=[get_thing, boom, internal_things],
        http=HttpSettings(),
        verifier=token_verifier(JwtSettings(), SIGNER.jwks),
        state={"readiness": {"database": always_ok}},
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _forged(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{_b64(header)}.{_b64(claims)}.{signature}"


def _claims(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(SIGNER.token(7), options={"verify_signature": False})
    payload.update(overrides)
    return payload


async def test_valid_token_identifies_the_user(client: httpx.AsyncClient) -> None:
    """A token signed by auth's key authenticates its subject."""
    response = await client.get("/v1/things/1", headers=SIGNER.bearer(7))
    assert response.status_code == 200
    assert response.json() == {"thing": 1, "owner": 7}


def _negative_tokens() -> dict[str, str]:
    other = TestSigner(kid=SIGNER.kid)  # same kid, different key
    public_pem = SIGNER.private_key.public_key().public_bytes(
        encoding=__import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]
        ).Encoding.Raw,
        format=__import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["PublicFormat"]
        ).PublicFormat.Raw,
    )
    valid = SIGNER.token(7)
    head, _payload, signature = valid.split(".")
    tampered_payload = _b64({**_claims(), "sub": "8"})
    return {
        "alg none": _forged({"alg": "none", "kid": SIGNER.kid}, _claims()),
        "HS256 with the public key": jwt.encode(
            _claims(), public_pem, algorithm="HS256", headers={"kid": SIGNER.kid}
        ),
        "expired": SIGNER.token(7, ttl=-60),
        "future nbf": SIGNER.token(7, nbf=int(__import__("time").time()) + 3600),
        "wrong issuer": SIGNER.token(7, iss="someone-else"),
        "wrong audience": SIGNER.token(7, aud="another-app"),
        "unknown kid": jwt.encode(_claims(), other.private_key, algorithm="EdDSA", headers={"kid": "nope"}),
        "malicious kid": jwt.encode(
            _claims(), other.private_key, algorithm="EdDSA", headers={"kid": "../../etc/passwd"}
        ),
        "other key same kid": other.token(7),
        "embedded jwk": jwt.encode(
            _claims(), other.private_key, algorithm="EdDSA", headers={"kid": SIGNER.kid, "jwk": other.jwk}
        ),
        "jku": jwt.encode(
            _claims(),
            other.private_key,
            algorithm="EdDSA",
            headers={"kid": SIGNER.kid, "jku": "http://evil/jwks"},
        ),
        "tampered payload": f"{head}.{tampered_payload}.{signature}",
        "refresh token used as access": SIGNER.token(7, typ="refresh"),
        "garbage": "not-a-jwt",
    }


@pytest.mark.parametrize("case", list(_negative_tokens()))
async def test_bad_tokens_are_refused_with_401(client: httpx.AsyncClient, case: str) -> None:
    """Every malformed, forged, expired or misdirected token gets 401 problem+json."""
    token = _negative_tokens()[case]
    response = await client.get("/v1/things/1", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, case
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_missing_token_is_401_with_www_authenticate(client: httpx.AsyncClient) -> None:
    """No Authorization header: 401 saying how to authenticate."""
    response = await client.get("/v1/things/1")
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]


async def test_domain_error_is_problem_json(client: httpx.AsyncClient) -> None:
    """A raised Problem becomes an RFC 9457 body with status, title and detail."""
    response = await client.get("/v1/things/404", headers=SIGNER.bearer())
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == 404
    assert body["detail"] == "thing 404 does not exist"
    assert body["instance"] == "/v1/things/404"


async def test_validation_error_is_400_problem(client: httpx.AsyncClient) -> None:
    """A path parameter of the wrong type is a 400 problem, not a 500."""
    response = await client.get("/v1/things/abc", headers=SIGNER.bearer())
    assert response.status_code in (400, 404)
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_unexpected_error_is_500_without_internals(client: httpx.AsyncClient) -> None:
    """A bug answers 500 with a generic problem, never a traceback."""
    response = await client.get("/v1/boom", headers=SIGNER.bearer())
    assert response.status_code == 500
    assert "ZeroDivisionError" not in response.text


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    """A safe X-Request-ID is echoed back; an unsafe one is replaced."""
    kept = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    replaced = await client.get("/health", headers={"X-Request-ID": "bad id\r\nx"})
    assert replaced.headers["x-request-id"] != "bad id\r\nx"
    assert len(replaced.headers["x-request-id"]) == 32


async def test_cors_headers_are_on_error_responses(client: httpx.AsyncClient) -> None:
    """A 401 and a 404 carry CORS headers, so the browser shows the real error."""
    for path in ("/v1/things/1", "/v1/things/404"):
        headers = {"Origin": ORIGIN}
        if path.endswith("404"):
            headers.update(SIGNER.bearer())
        response = await client.get(path, headers=headers)
        assert response.headers.get("access-control-allow-origin") == ORIGIN, path


async def test_preflight_allows_the_legacy_client(client: httpx.AsyncClient) -> None:
    """DELETE with a JSON body is preflighted; the preflight allows it with our headers."""
    response = await client.options(
        "/v1/things/1",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code in (200, 204)
    assert "DELETE" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


async def test_internal_route_refuses_calls_without_the_callers_credential(client: httpx.AsyncClient) -> None:
    """/internal routes need an allowed caller and its credential; a user token is not enough."""
    assert (await client.get("/internal/things")).status_code == 401
    assert (await client.get("/internal/things", headers=SIGNER.bearer())).status_code == 401
    assert (await client.get("/internal/things", headers=caller_headers("queue", "wrong"))).status_code == 401
    assert (await client.get("/internal/things", headers={"X-Service-Token": "s3cret"})).status_code == 401
    assert (
        await client.get("/internal/things", headers=caller_headers("queue", "s3cret"))
    ).status_code == 200


async def test_internal_route_refuses_a_caller_it_does_not_name(client: httpx.AsyncClient) -> None:
    """Another service is 403 whatever it presents, even the allowed caller's own credential."""
    response = await client.get("/internal/things", headers=caller_headers("sender", "s3cret"))
    assert response.status_code == 403
    assert "'sender' service may not call it (allowed: queue)" in response.json()["detail"]


async def test_probes_need_no_token(client: httpx.AsyncClient) -> None:
    """/health and /ready answer without authentication and list the checks."""
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}


async def test_metrics_count_and_time_each_route_by_template_and_status(client: httpx.AsyncClient) -> None:
    """/metrics serves Prometheus text: requests by route template (never the raw path) and status,
    their duration, and server errors."""

    def sample(text: str, metric: str, path: str, status: int) -> float:
        prefix = f'{metric}{{app_name="test",method="GET",path="{path}",status_code="{status}"}} '
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].removeprefix(prefix)) if lines else 0.0

    before = (await client.get("/metrics")).text
    for thing_id in (1, 2):
        await client.get(f"/v1/things/{thing_id}", headers=SIGNER.bearer())
    await client.get("/v1/boom", headers=SIGNER.bearer())
    after = (await client.get("/metrics")).text
    template = "/v1/things/{thing_id}"
    for metric in ("mailmerger_requests_total", "mailmerger_request_duration_seconds_count"):
        assert sample(after, metric, template, 200) - sample(before, metric, template, 200) == 2
    assert "/v1/things/1" not in after
    errors = "mailmerger_requests_error_total"
    assert sample(after, errors, "/v1/boom", 500) - sample(before, errors, "/v1/boom", 500) == 1


async def test_a_refused_token_is_counted_as_401_not_as_a_server_error(client: httpx.AsyncClient) -> None:
    """Authentication fails inside the metrics middleware; it still counts the 401 answered."""

    def sample(text: str, metric: str, status: int) -> float:
        prefix = (
            f'{metric}{{app_name="test",method="GET",path="/v1/things/{{thing_id}}",status_code="{status}"}} '
        )
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].removeprefix(prefix)) if lines else 0.0

    before = (await client.get("/metrics")).text
    assert (await client.get("/v1/things/1")).status_code == 401
    after = (await client.get("/metrics")).text
    assert (
        sample(after, "mailmerger_requests_total", 401) - sample(before, "mailmerger_requests_total", 401)
        == 1
    )
    assert sample(after, "mailmerger_requests_error_total", 500) == sample(
        before, "mailmerger_requests_error_total", 500
    )


def test_state_holder_is_litestar_state() -> None:
    """Apps keep their resources in Litestar's State (read by /ready)."""
    assert isinstance(State({"a": 1}), State)
