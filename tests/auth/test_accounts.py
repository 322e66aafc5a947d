"""Accounts over HTTP: sign-up, login (no enumeration, throttling), the signed-in user, password
change, logout and deletion."""

from __future__ import annotations

from datetime import timedelta

import aio_pika
from sqlalchemy import text

from mailmerger_shared import contracts as c
from tests.auth.support import PASSWORD, Harness, bearer, next_event, sign_up, unique_email


async def _login(auth: Harness, email: str, password: str = PASSWORD) -> tuple[int, dict[str, object]]:
    response = await auth.client.post("/v1/auth/login", json={"email": email, "password": password})
    return response.status_code, response.json()


async def test_sign_up_starts_a_session_for_the_new_user(auth: Harness) -> None:
    """The mailed confirmation link starts a session whose access token identifies the new account."""
    email = unique_email()
    session = await sign_up(auth, email, name="Ada Lovelace")
    me = await auth.client.get("/v1/auth/me", headers=bearer(session["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert me.json()["name"] == "Ada Lovelace"
    assert me.json()["has_password"] is True
    assert session["user_id"] == me.json()["id"]


async def test_emails_are_normalised_and_unique(auth: Harness) -> None:
    """The same address in another case or with spaces is the same account: signing up again
    creates nothing, and the password of the first sign-up still signs in."""
    email = unique_email()
    first = await sign_up(auth, f"  {email.upper()} ")
    me = await auth.client.get("/v1/auth/me", headers=bearer(first["access_token"]))
    assert me.json()["email"] == email
    again = await auth.client.post("/v1/auth/signup", json={"email": email, "password": "another password"})
    assert again.status_code == 202
    assert (await _login(auth, email.upper()))[0] == 200
    assert (await _login(auth, email, "another password"))[0] == 401


async def test_sign_up_refuses_a_short_password_and_a_malformed_email(auth: Harness) -> None:
    """Validation failures are 422 problems naming the field."""
    short = await auth.client.post("/v1/auth/signup", json={"email": unique_email(), "password": "short"})
    assert short.status_code == 422
    assert short.json()["field"] == "password"
    malformed = await auth.client.post(
        "/v1/auth/signup", json={"email": "not-an-email", "password": PASSWORD}
    )
    assert malformed.status_code == 422
    assert malformed.json()["field"] == "email"


async def test_unknown_email_and_wrong_password_get_the_same_answer(auth: Harness) -> None:
    """No account enumeration: same status and the same body for both mistakes."""
    email = unique_email()
    await sign_up(auth, email)
    wrong_password = await _login(auth, email, "not the password")
    unknown_email = await _login(auth, unique_email())
    assert wrong_password[0] == unknown_email[0] == 401
    assert wrong_password[1] == unknown_email[1]


async def test_passwords_are_stored_as_argon2id_hashes(auth: Harness) -> None:
    """The users table holds an argon2id hash with the configured parameters, never the password."""
    email = unique_email()
    await sign_up(auth, email)
    async with auth.engine.connect() as connection:
        stored = (
            await connection.execute(
                text("SELECT password_hash FROM auth.users WHERE email = :e"), {"e": email}
            )
        ).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in stored


async def test_login_rehashes_when_the_parameters_changed(auth: Harness, make_app: object) -> None:
    """A login on an app with stronger parameters replaces the stored hash with one made with them."""
    email = unique_email()
    await sign_up(auth, email)
    stronger = await make_app(MM_AUTH_ARGON2_TIME_COST="3")  # type: ignore[operator]
    response = await stronger.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    async with auth.engine.connect() as connection:
        stored = (
            await connection.execute(
                text("SELECT password_hash FROM auth.users WHERE email = :e"), {"e": email}
            )
        ).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=19456,t=3,p=1$")
    assert (await _login(auth, email))[0] == 200


async def test_too_many_attempts_on_an_account_answer_429_with_retry_after(auth: Harness) -> None:
    """After the per-account limit (5 here), even the right password waits for the window to end."""
    email = unique_email()
    await sign_up(auth, email)
    for _ in range(5):
        assert (await _login(auth, email, "wrong password"))[0] == 401
    response = await auth.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 429
    assert 0 < int(response.headers["retry-after"]) <= 15 * 60


async def test_unknown_emails_are_throttled_like_known_ones(auth: Harness) -> None:
    """The per-account limit applies to an address nobody registered: throttling reveals nothing."""
    email = unique_email()
    statuses = [(await _login(auth, email, "guess"))[0] for _ in range(6)]
    assert statuses == [401] * 5 + [429]


async def test_one_address_guessing_many_accounts_is_throttled(auth: Harness) -> None:
    """The per-address limit (8 here) stops a spray of guesses across different emails."""
    statuses = [(await _login(auth, unique_email(), "guess"))[0] for _ in range(9)]
    assert statuses[:8] == [401] * 8
    assert statuses[8] == 429


async def test_a_successful_login_forgives_earlier_failures(auth: Harness) -> None:
    """Failures before a successful login do not count towards the next lockout."""
    email = unique_email()
    await sign_up(auth, email)
    for _ in range(3):
        await _login(auth, email, "typo")
    assert (await _login(auth, email))[0] == 200
    for _ in range(3):
        await _login(auth, email, "typo")
    assert (await _login(auth, email))[0] == 200  # the 8th attempt: over 5 unless forgiven


async def test_password_change_ends_the_other_sessions(auth: Harness) -> None:
    """The new password works, the old one does not, and only the caller's session survives."""
    email = unique_email()
    mine = await sign_up(auth, email)
    _, other = await _login(auth, email)
    changed = await auth.client.put(
        "/v1/auth/me/password",
        json={"current_password": PASSWORD, "new_password": "an entirely new passphrase"},
        headers=bearer(mine["access_token"]),
    )
    assert changed.status_code == 204
    assert (await _login(auth, email))[0] == 401
    assert (await _login(auth, email, "an entirely new passphrase"))[0] == 200
    kept = await auth.client.post("/v1/auth/refresh", json={"refresh_token": mine["refresh_token"]})
    assert kept.status_code == 200
    ended = await auth.client.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert ended.status_code == 401


async def test_password_change_needs_the_current_password(auth: Harness) -> None:
    """A wrong current password is refused (403) and changes nothing."""
    email = unique_email()
    session = await sign_up(auth, email)
    response = await auth.client.put(
        "/v1/auth/me/password",
        json={"current_password": "not it", "new_password": "an entirely new passphrase"},
        headers=bearer(session["access_token"]),
    )
    assert response.status_code == 403
    assert (await _login(auth, email))[0] == 200


async def test_logout_ends_the_session(auth: Harness) -> None:
    """After logout the session's refresh token is refused."""
    session = await sign_up(auth)
    assert (
        await auth.client.post("/v1/auth/logout", headers=bearer(session["access_token"]))
    ).status_code == 204
    refreshed = await auth.client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert refreshed.status_code == 401


async def test_deleting_the_account_publishes_user_deleted(
    auth: Harness, events: aio_pika.abc.AbstractQueue
) -> None:
    """DELETE /v1/auth/me removes the account (login fails, /me is 404) and UserDeleted is published."""
    email = unique_email()
    session = await sign_up(auth, email)
    response = await auth.client.request(
        "DELETE", "/v1/auth/me", json={"password": PASSWORD}, headers=bearer(session["access_token"])
    )
    assert response.status_code == 204
    assert (await _login(auth, email))[0] == 401
    assert (await auth.client.get("/v1/auth/me", headers=bearer(session["access_token"]))).status_code == 404
    await next_event(events, c.UserDeleted, lambda event: event.user_id == session["user_id"])


async def test_access_tokens_expire_within_15_minutes(auth: Harness) -> None:
    """An access token issued 16 minutes ago is refused."""
    email = unique_email()
    await sign_up(auth, email)
    auth.clock.shift(-timedelta(minutes=16))
    _, session = await _login(auth, email)
    auth.clock.reset()
    response = await auth.client.get("/v1/auth/me", headers=bearer(str(session["access_token"])))
    assert response.status_code == 401


async def test_deleting_an_account_needs_its_password(auth: Harness) -> None:
    """An access token alone cannot delete the account: no password is 422, a wrong one 403, and the
    account is still there after both."""
    email = unique_email()
    session = await sign_up(auth, email)
    headers = bearer(session["access_token"])
    missing = await auth.client.delete("/v1/auth/me", headers=headers)
    assert missing.status_code == 422, missing.text
    assert "password" in missing.json()["detail"]
    wrong = await auth.client.request(
        "DELETE", "/v1/auth/me", json={"password": "not-it-at-all"}, headers=headers
    )
    assert wrong.status_code == 403, wrong.text
    assert (await auth.client.get("/v1/auth/me", headers=headers)).status_code == 200
    assert (await _login(auth, email))[0] == 200


async def test_password_guesses_with_a_stolen_token_share_the_sign_in_throttle(auth: Harness) -> None:
    """Wrong passwords given to delete the account or change the password count against the account
    like failed sign-ins (5 here): then even the right one waits, and so does signing in."""
    email = unique_email()
    session = await sign_up(auth, email)
    headers = bearer(session["access_token"])
    guesses = [{"password": f"guess {n}"} for n in range(3)]
    statuses = [
        (await auth.client.request("DELETE", "/v1/auth/me", json=guess, headers=headers)).status_code
        for guess in guesses
    ]
    change = {"current_password": "guess", "new_password": "a brand new passphrase"}
    for _ in range(2):
        statuses.append(
            (await auth.client.put("/v1/auth/me/password", json=change, headers=headers)).status_code
        )
    assert statuses == [403] * 5
    right = await auth.client.request("DELETE", "/v1/auth/me", json={"password": PASSWORD}, headers=headers)
    assert right.status_code == 429, right.text
    assert int(right.headers["retry-after"]) > 0
    assert (await _login(auth, email))[0] == 429
    assert (await auth.client.get("/v1/auth/me", headers=headers)).status_code == 200
