"""Refresh tokens end the ways Google ends them (GMAIL_FACTS.md 2.5), each answering
``invalid_grant`` "Token has been expired or revoked."."""

from __future__ import annotations

import httpx

from tests.emulator.helpers import (
    CLIENT_ID,
    CLIENT_SECRET,
    GMAIL_SEND,
    REDIRECT_URI,
    USERINFO_EMAIL,
    FakeClock,
    MakeEmulator,
)

EXPIRED_OR_REVOKED = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
DAY = 86_400


async def refresh_token(
    client: httpx.AsyncClient, email: str = "erin@gmail.local", scopes: tuple[str, ...] = (GMAIL_SEND,)
) -> str:
    answer = await client.post("/_emulator/tokens", json={"email": email, "scopes": list(scopes)})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["refresh_token"])


async def use(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )


async def test_unused_for_six_months_ends(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    token = await refresh_token(emulator)
    clock.advance(184 * DAY)
    answer = await use(emulator, token)
    assert answer.status_code == 400
    assert answer.json() == EXPIRED_OR_REVOKED


async def test_use_keeps_a_token_alive(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    """Six months counts from the last use, not from issue."""
    token = await refresh_token(emulator)
    for _ in range(3):
        clock.advance(120 * DAY)
        assert (await use(emulator, token)).status_code == 200


async def test_password_change_ends_gmail_tokens(emulator: httpx.AsyncClient) -> None:
    """A password change ends refresh tokens with Gmail scopes, not sign-in-only ones."""
    gmail = await refresh_token(emulator)
    sign_in = await refresh_token(emulator, scopes=(USERINFO_EMAIL,))
    changed = await emulator.post("/_emulator/users/erin@gmail.local/password-change")
    assert changed.json() == {"ended_refresh_tokens": 1}
    assert (await use(emulator, gmail)).json() == EXPIRED_OR_REVOKED
    assert (await use(emulator, sign_in)).status_code == 200


async def test_password_change_of_an_unknown_user_is_404(emulator: httpx.AsyncClient) -> None:
    assert (await emulator.post("/_emulator/users/nobody@gmail.local/password-change")).status_code == 404


async def test_hundred_and_first_token_ends_the_oldest_as_expired_or_revoked(
    emulator: httpx.AsyncClient,
) -> None:
    tokens = [await refresh_token(emulator) for _ in range(101)]
    assert (await use(emulator, tokens[0])).json() == EXPIRED_OR_REVOKED
    assert (await use(emulator, tokens[1])).status_code == 200


async def test_testing_app_tokens_end_after_seven_days(make_emulator: MakeEmulator, clock: FakeClock) -> None:
    """A client in "Testing" publishing status: tokens with Gmail scopes last 7 days, even in use."""
    client = await make_emulator(
        clients=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [REDIRECT_URI],
                "publishing_status": "testing",
            }
        ]
    )
    gmail = await refresh_token(client)
    sign_in = await refresh_token(client, scopes=(USERINFO_EMAIL,))
    clock.advance(6 * DAY)
    assert (await use(client, gmail)).status_code == 200
    clock.advance(DAY)
    assert (await use(client, gmail)).json() == EXPIRED_OR_REVOKED
    assert (await use(client, sign_in)).status_code == 200


async def test_production_app_tokens_outlive_seven_days(
    emulator: httpx.AsyncClient, clock: FakeClock
) -> None:
    token = await refresh_token(emulator)
    clock.advance(30 * DAY)
    assert (await use(emulator, token)).status_code == 200
