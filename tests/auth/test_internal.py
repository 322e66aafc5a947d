"""``/internal/auth``: Gmail access tokens for the sender (single-flight refresh, reconnect
required), the user's accounts, connect tickets, and the tokens' encryption at rest."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aio_pika
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from mailmerger_shared import contracts as c
from mailmerger_shared.internal_api import ConnectTicket, GmailAccessToken
from mailmerger_shared.web.internal import caller_headers
from tests.auth.support import (
    Harness,
    bearer,
    google_round_trip,
    next_event,
    path_and_query,
    query_of,
    sign_up,
)

# Emulator access tokens live an hour; 56 minutes later one is inside the 5-minute refresh margin.
NEAR_EXPIRY = timedelta(minutes=56)


async def _connected_account(auth: Harness, *, google_account: str | None = None) -> tuple[int, int]:
    """A new user with one connected Gmail account: (user id, account id)."""
    session = await sign_up(auth)
    ticket = await auth.client.post(
        f"/internal/auth/users/{session['user_id']}/connect-tickets", headers=auth.caller_headers("queue")
    )
    await google_round_trip(
        auth,
        path_and_query(ticket.json()["url"]),
        google_account=google_account or f"g{uuid.uuid4().hex[:10]}@gmail.com",
    )
    accounts = await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["access_token"]))
    return session["user_id"], accounts.json()[0]["account_id"]


def _token_route(account_id: int) -> str:
    return f"/internal/auth/gmail-accounts/{account_id}/access-token"


async def test_internal_routes_need_their_callers_credential(auth: Harness) -> None:
    """No credential, a wrong one, or a user's access token: 401 on every internal route."""
    session = await sign_up(auth)
    routes: list[tuple[str, str, str]] = [
        ("POST", _token_route(1), "sender"),
        ("POST", f"/internal/auth/users/{session['user_id']}/connect-tickets", "queue"),
    ]
    for method, path, caller in routes:
        for headers in ({}, caller_headers(caller, "wrong"), bearer(session["access_token"])):
            assert (await auth.client.request(method, path, headers=headers)).status_code == 401, (
                path,
                headers,
            )


async def test_only_the_sender_obtains_gmail_access_tokens(auth: Harness) -> None:
    """The queue's own valid credential is 403 on the access-token route, and the sender's on tickets."""
    user_id, account_id = await _connected_account(auth)
    response = await auth.client.post(_token_route(account_id), headers=auth.caller_headers("queue"))
    assert response.status_code == 403, response.text
    ticket = await auth.client.post(
        f"/internal/auth/users/{user_id}/connect-tickets", headers=auth.caller_headers("sender")
    )
    assert ticket.status_code == 403, ticket.text


async def test_connect_ticket_points_the_legacy_browser_at_gmail_authorize(auth: Harness) -> None:
    """The ticket's URL is the public legacy authorize route with purpose=authorize and the ticket."""
    session = await sign_up(auth)
    response = await auth.client.post(
        f"/internal/auth/users/{session['user_id']}/connect-tickets", headers=auth.caller_headers("queue")
    )
    assert response.status_code == 201
    ticket = ConnectTicket(**response.json())
    assert ticket.url.startswith("http://127.0.0.1:8080/api/oauth/gmail-authorize?")
    assert query_of(ticket.url) == {"purpose": "authorize", "ticket": ticket.ticket}


async def test_connect_ticket_for_an_unknown_user_is_404(auth: Harness) -> None:
    """No ticket is made for a user that does not exist."""
    response = await auth.client.post(
        "/internal/auth/users/999999999/connect-tickets", headers=auth.caller_headers("queue")
    )
    assert response.status_code == 404


async def test_legacy_ticket_flow_connects_gmail_and_finishes_on_the_frontend(auth: Harness) -> None:
    """Opening the ticket URL ends on oauth-finish#at=…&rt=… for the ticket's user, with Gmail connected."""
    user_id, account_id = await _connected_account(auth)
    tokens = await auth.client.post(_token_route(account_id), headers=auth.caller_headers("sender"))
    assert tokens.status_code == 200, tokens.text
    assert (tokens.json()["account_id"], tokens.json()["user_id"]) == (account_id, user_id)


async def test_a_fresh_token_is_served_without_calling_google(auth: Harness) -> None:
    """The token from the connection is handed out as is while it is outside the refresh margin."""
    _, account_id = await _connected_account(auth)
    auth.google.requests.clear()
    response = await auth.client.post(_token_route(account_id), headers=auth.caller_headers("sender"))
    assert response.status_code == 200
    token = GmailAccessToken(**response.json())
    assert token.account_id == account_id
    assert token.access_token.startswith("ya29.")
    assert auth.google.refreshes() == 0
    profile = await auth.emulator.get("/oauth2/v3/userinfo", headers=bearer(token.access_token))
    assert profile.status_code == 200


async def test_a_token_near_expiry_is_refreshed_first(auth: Harness) -> None:
    """Within five minutes of expiry, the token is refreshed at Google before it is handed out."""
    _, account_id = await _connected_account(auth)
    before = (await auth.client.post(_token_route(account_id), headers=auth.caller_headers("sender"))).json()
    auth.clock.shift(NEAR_EXPIRY)
    after = (await auth.client.post(_token_route(account_id), headers=auth.caller_headers("sender"))).json()
    assert after["access_token"] != before["access_token"]
    assert auth.google.refreshes() == 1


async def test_concurrent_requests_on_two_replicas_refresh_once(
    auth: Harness, make_app: Callable[..., Any]
) -> None:
    """Twenty simultaneous requests, half on another replica, cause one refresh and get one token."""
    _, account_id = await _connected_account(auth)
    replica = await make_app(clock=auth.clock)
    auth.clock.shift(NEAR_EXPIRY)
    auth.google.requests.clear()
    answers = await asyncio.gather(
        *(
            client.post(_token_route(account_id), headers=auth.caller_headers("sender"))
            for _ in range(10)
            for client in (auth.client, replica.client)
        )
    )
    assert all(answer.status_code == 200 for answer in answers)
    assert len({answer.json()["access_token"] for answer in answers}) == 1
    assert auth.google.refreshes() + replica.google.refreshes() == 1


async def test_a_revoked_grant_marks_the_account_and_answers_409(
    auth: Harness, events: aio_pika.abc.AbstractQueue
) -> None:
    """Google's invalid_grant: 409 reason=reconnect_required, the state is committed, the event published."""
    user_id, account_id = await _connected_account(auth)
    token = (await auth.client.post(_token_route(account_id), headers=auth.caller_headers("sender"))).json()[
        "access_token"
    ]
    revoked = await auth.emulator.post("/revoke", data={"token": token})  # the user removed our access
    assert revoked.status_code == 200
    auth.clock.shift(NEAR_EXPIRY)

    response = await auth.client.post(_token_route(account_id), headers=auth.caller_headers("sender"))
    assert response.status_code == 409
    assert response.json()["reason"] == "reconnect_required"
    event = await next_event(events, c.GmailReconnectRequired, lambda event: event.account_id == account_id)
    assert event.user_id == user_id
    async with auth.engine.connect() as connection:
        state = (
            await connection.execute(
                text("SELECT state FROM auth.gmail_accounts WHERE id = :id"), {"id": account_id}
            )
        ).scalar_one()
    assert state == "reconnect_required"
    again = await auth.client.post(_token_route(account_id), headers=auth.caller_headers("sender"))
    assert again.status_code == 409
    assert auth.google.refreshes() == 1  # the second answer needs no call to Google


async def test_reconnecting_restores_an_account_that_needed_it(auth: Harness) -> None:
    """After reconnect_required, connecting the same Google account again serves tokens again."""
    account = f"g{uuid.uuid4().hex[:10]}@gmail.com"
    user_id, account_id = await _connected_account(auth, google_account=account)
    token = (await auth.client.post(_token_route(account_id), headers=auth.caller_headers("sender"))).json()[
        "access_token"
    ]
    await auth.emulator.post("/revoke", data={"token": token})
    auth.clock.shift(NEAR_EXPIRY)
    assert (
        await auth.client.post(_token_route(account_id), headers=auth.caller_headers("sender"))
    ).status_code == 409
    ticket = await auth.client.post(
        f"/internal/auth/users/{user_id}/connect-tickets", headers=auth.caller_headers("queue")
    )
    await google_round_trip(auth, path_and_query(ticket.json()["url"]), google_account=account)
    assert (
        await auth.client.post(_token_route(account_id), headers=auth.caller_headers("sender"))
    ).status_code == 200


async def test_an_unknown_account_is_404(auth: Harness) -> None:
    """The sender asking for an account that does not exist gets 404."""
    response = await auth.client.post(_token_route(999_999_999), headers=auth.caller_headers("sender"))
    assert response.status_code == 404


async def test_the_auth_schema_holds_no_plaintext_google_token(auth: Harness, migrated_database: str) -> None:
    """A data dump of the ``auth`` schema contains neither the refresh nor the access token Google issued."""
    _, account_id = await _connected_account(auth)
    auth.clock.shift(NEAR_EXPIRY)
    await auth.client.post(_token_route(account_id), headers=auth.caller_headers("sender"))  # one refresh too
    issued = [
        value
        for response in auth.google.token_responses
        for key in ("access_token", "refresh_token")
        if (value := response.get(key))
    ]
    assert len(issued) == 3  # the code exchange's pair and the refreshed access token
    url = make_url(migrated_database)
    dump = await asyncio.to_thread(
        subprocess.run,
        [
            "pg_dump",
            "-h",
            url.host or "127.0.0.1",
            "-U",
            url.username or "postgres",
            "-n",
            "auth",
            "--data-only",
            url.database or "",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "gmail_accounts" in dump.stdout
    for token in issued:
        assert token not in dump.stdout


# The access token is opened while it is fresh; the refresh token when the access token is near expiry.
@pytest.mark.parametrize(("column", "later"), [("access_token", timedelta()), ("refresh_token", NEAR_EXPIRY)])
async def test_swapped_ciphertexts_do_not_decrypt(auth: Harness, column: str, later: timedelta) -> None:
    """Two accounts' sealed tokens exchanged in the database: neither account hands out the other's token."""
    _, first = await _connected_account(auth)
    _, second = await _connected_account(auth)
    tokens = {
        account: (
            await auth.client.post(_token_route(account), headers=auth.caller_headers("sender"))
        ).json()["access_token"]
        for account in (first, second)
    }
    async with auth.engine.begin() as connection:
        await connection.execute(
            text(
                f"UPDATE auth.gmail_accounts AS a SET {column} = b.{column} FROM auth.gmail_accounts AS b "
                "WHERE (a.id, b.id) IN ((:first, :second), (:second, :first))"
            ),
            {"first": first, "second": second},
        )
    auth.clock.shift(later)
    for account in (first, second):
        response = await auth.client.post(_token_route(account), headers=auth.caller_headers("sender"))
        assert response.status_code == 500
        assert not any(token in response.text for token in tokens.values())


async def test_a_token_gmail_refused_is_refreshed_not_handed_out_again(auth: Harness) -> None:
    """The sender names a token Gmail answered 401 to: auth refreshes, even though it has not expired;
    a caller naming an older token gets the newer one without another refresh."""
    _, account_id = await _connected_account(auth)
    route = _token_route(account_id)
    first = (await auth.client.post(route, headers=auth.caller_headers("sender"))).json()["access_token"]
    auth.google.requests.clear()
    refused = {"refused": first}
    second = (await auth.client.post(route, json=refused, headers=auth.caller_headers("sender"))).json()
    assert second["access_token"] != first
    assert auth.google.refreshes() == 1
    third = (await auth.client.post(route, json=refused, headers=auth.caller_headers("sender"))).json()
    assert third["access_token"] == second["access_token"]
    assert auth.google.refreshes() == 1
