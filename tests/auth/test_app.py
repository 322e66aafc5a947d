"""The auth app as a whole: its OpenAPI document and its readiness."""

from __future__ import annotations

from tests.auth.support import Harness


async def test_openapi_documents_public_routes_and_hides_internal_ones(auth: Harness) -> None:
    """/schema/auth lists the v1 and legacy routes, never /internal ones."""
    response = await auth.client.get("/schema/auth/openapi.json")
    assert response.status_code == 200
    paths = set(response.json()["paths"])
    assert {
        "/v1/auth/login",
        "/v1/auth/.well-known/jwks.json",
        "/api/auth/login",
        "/api/oauth/oauth2callback",
    } <= paths
    assert not any(path.startswith("/internal") for path in paths)


async def test_ready_checks_the_database_redis_and_the_broker(auth: Harness) -> None:
    """/ready answers 200 naming each dependency it checked."""
    response = await auth.client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}
