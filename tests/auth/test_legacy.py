"""The legacy client's routes (shared/LEGACY_API.md): exact envelope and fields, real status codes."""

from __future__ import annotations

from datetime import timedelta

from tests.auth.support import (
    FRONTEND_URL,
    PASSWORD,
    Harness,
    bearer,
    claims,
    fragment_of,
    google_round_trip,
    query_of,
    unique_email,
)

ENVELOPE_KEYS = {"success", "status_code", "message", "data"}


async def _signup(auth: Harness, email: str) -> dict[str, str]:
    response = await auth.client.post(
        "/api/auth/signup", json={"email": email, "password": PASSWORD, "name": "Grace"}
    )
    assert response.status_code == 201
    data: dict[str, str] = response.json()["data"]
    return data


async def test_signup_answers_the_envelope_with_both_tokens(auth: Harness) -> None:
    """201, success envelope, data = {jwt_token, refresh_token}, each a JWT with a numeric exp."""
    response = await auth.client.post(
        "/api/auth/signup", json={"email": unique_email(), "password": PASSWORD, "name": "Grace"}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is True
    assert body["status_code"] == 201
    assert isinstance(body["message"], str)
    assert set(body["data"]) == {"jwt_token", "refresh_token"}
    assert isinstance(claims(body["data"]["jwt_token"])["exp"], int)
    assert isinstance(claims(body["data"]["refresh_token"])["exp"], int)


async def test_login_answers_jwt_and_user_name_and_sets_the_refresh_cookie(auth: Harness) -> None:
    """data = {jwt_token, user_name}; the refresh token travels in an httpOnly cookie."""
    email = unique_email()
    await _signup(auth, email)
    response = await auth.client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is True
    assert body["data"] == {"jwt_token": body["data"]["jwt_token"], "user_name": "Grace"}
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith("refresh_token=")
    assert "httponly" in cookie
    assert "path=/api/auth" in cookie
    max_age = int(cookie.split("max-age=")[1].split(";")[0])
    assert 7 * 24 * 3600 - 60 <= max_age <= 7 * 24 * 3600  # the refresh token's own lifetime
    refresh_token = response.cookies["refresh_token"]
    assert claims(refresh_token)["typ"] == "refresh"
    renewed = await auth.client.get("/api/auth/refresh-jwt-token", headers=bearer(refresh_token))
    assert renewed.status_code == 200


async def test_errors_use_the_envelope_with_the_real_status(auth: Harness) -> None:
    """A wrong password is HTTP 401 with success=false, status_code=401, a message and empty data."""
    email = unique_email()
    await _signup(auth, email)
    response = await auth.client.post("/api/auth/login", json={"email": email, "password": "wrong"})
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "status_code": 401,
        "message": "the email or the password is incorrect",
        "data": {},
    }


async def test_duplicate_signup_and_malformed_body_are_enveloped_errors(auth: Harness) -> None:
    """409 for a taken email, 400 for a body that is not the expected shape."""
    email = unique_email()
    await _signup(auth, email)
    taken = await auth.client.post(
        "/api/auth/signup", json={"email": email, "password": PASSWORD, "name": "x"}
    )
    assert (taken.status_code, taken.json()["status_code"], taken.json()["success"]) == (409, 409, False)
    malformed = await auth.client.post("/api/auth/signup", json={"email": email})
    assert (malformed.status_code, malformed.json()["status_code"]) == (400, 400)
    assert set(malformed.json()) == ENVELOPE_KEYS


async def test_throttled_login_is_an_enveloped_429_with_retry_after(auth: Harness) -> None:
    """The throttle's 429 keeps its Retry-After header on the legacy route."""
    email = unique_email()
    for _ in range(5):
        await auth.client.post("/api/auth/login", json={"email": email, "password": "guess"})
    response = await auth.client.post("/api/auth/login", json={"email": email, "password": "guess"})
    assert response.status_code == 429
    assert response.json()["status_code"] == 429
    assert int(response.headers["retry-after"]) > 0


async def test_refresh_jwt_token_issues_an_access_token_and_keeps_the_refresh_token(auth: Harness) -> None:
    """data = {jwt_token}; the client keeps its refresh token, so it is not rotated away."""
    tokens = await _signup(auth, unique_email())
    for _ in range(2):
        response = await auth.client.get(
            "/api/auth/refresh-jwt-token", headers=bearer(tokens["refresh_token"])
        )
        assert response.status_code == 200
        assert set(response.json()["data"]) == {"jwt_token"}
        access = response.json()["data"]["jwt_token"]
        assert (await auth.client.get("/v1/auth/me", headers=bearer(access))).status_code == 200


async def test_refresh_jwt_token_refuses_an_access_token(auth: Harness) -> None:
    """The bearer must be a refresh token: an access token is a 401 envelope."""
    tokens = await _signup(auth, unique_email())
    response = await auth.client.get("/api/auth/refresh-jwt-token", headers=bearer(tokens["jwt_token"]))
    assert response.status_code == 401
    assert response.json()["success"] is False


async def test_refresh_jwt_token_refuses_an_expired_refresh_token(auth: Harness) -> None:
    """Past its exp, the refresh token only renews through renew-refresh-and-jwt-token."""
    auth.clock.shift(-timedelta(days=8))
    tokens = await _signup(auth, unique_email())
    auth.clock.reset()
    response = await auth.client.get("/api/auth/refresh-jwt-token", headers=bearer(tokens["refresh_token"]))
    assert response.status_code == 401


async def test_renew_accepts_an_expired_current_refresh_token_and_rotates_it(auth: Harness) -> None:
    """An expired (but current, within-lifetime) token renews to {jwt_token, refresh_token, user_name};
    presenting it again afterwards (past the reuse grace) is a reuse that ends the session."""
    auth.clock.shift(-timedelta(days=8))
    tokens = await _signup(auth, unique_email())
    auth.clock.reset()
    response = await auth.client.get(
        "/api/auth/renew-refresh-and-jwt-token", headers=bearer(tokens["refresh_token"])
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == {"jwt_token", "refresh_token", "user_name"}
    assert data["user_name"] == "Grace"
    assert claims(data["refresh_token"])["exp"] > claims(tokens["refresh_token"])["exp"]

    auth.clock.shift(timedelta(seconds=31))  # past the grace a second tab gets
    reused = await auth.client.get(
        "/api/auth/renew-refresh-and-jwt-token", headers=bearer(tokens["refresh_token"])
    )
    assert reused.status_code == 401
    current = await auth.client.get("/api/auth/refresh-jwt-token", headers=bearer(data["refresh_token"]))
    assert current.status_code == 401


async def test_gmail_authorize_signup_ends_on_oauth_finish_with_both_tokens(auth: Harness) -> None:
    """The legacy Google flow ends with a 302 to <FRONTEND_URL>/oauth-finish#at=<jwt>&rt=<refresh>."""
    trip = await google_round_trip(
        auth, "/api/oauth/gmail-authorize?purpose=signup", google_account=unique_email("legacy")
    )
    redirect_uri = query_of(trip.start.headers["location"])["redirect_uri"]
    assert redirect_uri == "http://127.0.0.1:8080/api/oauth/oauth2callback"
    assert trip.finish is not None
    location = trip.finish.headers["location"]
    assert location.startswith(f"{FRONTEND_URL}/oauth-finish#at=")
    fragment = fragment_of(location)
    assert set(fragment) == {"at", "rt"}
    assert claims(fragment["at"])["typ"] == "access"
    assert claims(fragment["rt"])["typ"] == "refresh"


async def test_gmail_authorize_from_the_login_page_signs_in_by_google_email(auth: Harness) -> None:
    """purpose=authorize without a ticket signs in the account whose email the Google account has."""
    email = unique_email("legacy")
    await _signup(auth, email)
    trip = await google_round_trip(auth, "/api/oauth/gmail-authorize?purpose=authorize", google_account=email)
    me = await auth.client.get("/v1/auth/me", headers=bearer(trip.fragment["at"]))
    assert me.json()["email"] == email


async def test_gmail_authorize_rejects_an_unknown_purpose(auth: Harness) -> None:
    """Only signup and authorize exist: anything else is a 400 envelope."""
    response = await auth.client.get("/api/oauth/gmail-authorize?purpose=steal")
    assert response.status_code == 400
    assert response.json()["success"] is False
