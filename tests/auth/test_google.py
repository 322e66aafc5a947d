"""Sign-in with Google and connecting Gmail, end to end against the emulator (auto-approved consent,
the account a test picks), including every way the browser's return can be wrong."""

from __future__ import annotations

import uuid
from datetime import timedelta

import aio_pika
import msgspec
import pytest
from sqlalchemy import text

from mailmerger_auth.google_authorization import requested_scopes
from mailmerger_auth.settings import GMAIL_METADATA, GMAIL_SEND
from mailmerger_shared import contracts as c
from mailmerger_shared.errors import Invalid
from tests.auth.support import (
    FRONTEND_URL,
    GOOGLE_URL,
    Harness,
    bearer,
    fragment_of,
    google_round_trip,
    next_event,
    path_and_query,
    query_of,
    sign_up,
)


def google_account() -> str:
    return f"g{uuid.uuid4().hex[:10]}@gmail.com"


async def _connect(
    auth: Harness, access_token: str, account: str, *, metadata: bool = False
) -> dict[str, str]:
    """Connect ``account`` to the signed-in user as the frontend would: ticket, then navigation."""
    ticket = await auth.client.post("/v1/auth/google/connect-tickets", headers=bearer(access_token))
    assert ticket.status_code == 201, ticket.text
    url = path_and_query(ticket.json()["url"]) + ("&metadata=true" if metadata else "")
    return (await google_round_trip(auth, url, google_account=account)).fragment


async def test_sign_up_with_google_creates_the_account_and_connects_gmail(
    auth: Harness, events: aio_pika.abc.AbstractQueue
) -> None:
    """The callback ends on the frontend with a session for the new Google user, whose Gmail is connected."""
    account = google_account()
    trip = await google_round_trip(auth, "/v1/auth/google/authorize?purpose=signup", google_account=account)
    assert trip.finish is not None
    assert trip.finish.headers["location"].startswith(f"{FRONTEND_URL}/oauth-finish#")
    session = trip.fragment
    me = (await auth.client.get("/v1/auth/me", headers=bearer(session["at"]))).json()
    assert me["email"] == account
    assert me["signs_in_with_google"] is True
    assert me["has_password"] is False
    gmail = (await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["at"]))).json()
    assert [(g["email"], g["state"]) for g in gmail] == [(account, "connected")]
    assert GMAIL_SEND in gmail[0]["scopes"]
    assert GMAIL_METADATA not in gmail[0]["scopes"]
    connected = await next_event(events, c.GmailConnected, lambda event: event.email == account)
    assert connected.account_id == gmail[0]["account_id"]
    refreshed = await auth.client.post("/v1/auth/refresh", json={"refresh_token": session["rt"]})
    assert refreshed.status_code == 200


@pytest.mark.parametrize(
    ("profile_name", "display_name"),
    [
        # Text, not a header: kept as it is (the sender writes it encoded).
        ("=?utf-8?q?x=0D=0ABcc:_someone@example.org?=", "=?utf-8?q?x=0D=0ABcc:_someone@example.org?="),
        ("Ada\r\nBcc: x@evil.test", "Ada Bcc: x@evil.test"),
        ("Ada\r\n Lovelace", "Ada Lovelace"),
        ("Ada\u2028Love\x00lace\x1b\u2029", "Ada Lovelace"),
        ("Zoë\x85Ünïcødé\t 山田", "Zoë Ünïcødé 山田"),
        ("Zoë " * 100, ("Zoë " * 50).strip()),  # 400 characters: the first 200 stay
        ("\r\n\u2028 ", None),
    ],
)
async def test_the_google_profile_name_is_cleaned_before_it_names_the_sender(
    auth: Harness, events: aio_pika.abc.AbstractQueue, profile_name: str, display_name: str | None
) -> None:
    """Google's profile name becomes the account's display name (the From name of its mail) with
    line breaks as spaces, controls and separators gone and at most 200 characters: the user cannot
    change Google's data, so it is cleaned, never refused, and the connection succeeds."""
    account = google_account()
    created = await auth.emulator.post("/_emulator/users", json={"email": account, "name": profile_name})
    assert created.status_code == 201, created.text
    session = await sign_up(auth)
    await _connect(auth, session["access_token"], account)
    [gmail] = (
        await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["access_token"]))
    ).json()
    assert gmail["display_name"] == display_name
    connected = await next_event(events, c.GmailConnected, lambda event: event.email == account)
    assert connected.display_name == display_name
    token = await auth.client.post(
        f"/internal/auth/gmail-accounts/{gmail['account_id']}/access-token",
        headers=auth.caller_headers("sender"),
    )
    assert token.status_code == 200, token.text
    assert token.json()["display_name"] == display_name


async def test_authorization_request_uses_pkce_nonce_state_and_the_exact_redirect_uri(auth: Harness) -> None:
    """What the browser is sent to Google with, and the binding cookie it gets."""
    start = await auth.client.get("/v1/auth/google/authorize?purpose=signup")
    assert start.status_code == 302
    location = start.headers["location"]
    assert location.startswith(f"{GOOGLE_URL}/o/oauth2/v2/auth?")
    params = query_of(location)
    assert params["client_id"] == "mailmerger-dev"
    assert params["redirect_uri"] == "http://127.0.0.1:8080/v1/auth/google/callback"
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 32
    assert len(params["nonce"]) >= 22
    assert params["access_type"] == "offline"
    assert params["scope"].split() == ["openid", "email", "profile", GMAIL_SEND]
    cookie = start.headers["set-cookie"].lower()
    assert "mm_oauth_browser=" in cookie
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "max-age=600" in cookie


async def test_signing_in_again_with_google_finds_the_same_account(auth: Harness) -> None:
    """A second sign-in with the same Google account is the same user, not a new one."""
    account = google_account()
    first = await google_round_trip(auth, "/v1/auth/google/authorize?purpose=signup", google_account=account)
    second = await google_round_trip(auth, "/v1/auth/google/authorize?purpose=signin", google_account=account)
    user = (await auth.client.get("/v1/auth/me", headers=bearer(first.fragment["at"]))).json()["id"]
    assert (await auth.client.get("/v1/auth/me", headers=bearer(second.fragment["at"]))).json()["id"] == user


async def test_sign_in_with_an_unknown_google_account_creates_nothing(auth: Harness) -> None:
    """``signin`` only finds accounts: an unknown Google account ends with error=no_account."""
    account = google_account()
    trip = await google_round_trip(auth, "/v1/auth/google/authorize?purpose=signin", google_account=account)
    assert trip.fragment["error"] == "no_account"
    assert "at" not in trip.fragment
    async with auth.engine.connect() as connection:
        count = (
            await connection.execute(text("SELECT count(*) FROM auth.users WHERE email = :e"), {"e": account})
        ).scalar_one()
    assert count == 0


async def test_google_sign_in_reaches_the_password_account_of_the_same_email(auth: Harness) -> None:
    """Google vouches for the email: signing in with it opens the account registered with it."""
    account = google_account()
    registered = await sign_up(auth, account)
    trip = await google_round_trip(auth, "/v1/auth/google/authorize?purpose=signin", google_account=account)
    me = (await auth.client.get("/v1/auth/me", headers=bearer(trip.fragment["at"]))).json()
    assert me["id"] == registered["user_id"]
    assert me["signs_in_with_google"] is True


async def test_a_user_connects_several_gmail_accounts_with_tickets(auth: Harness) -> None:
    """Each connect ticket adds the Google account picked to the ticket's user; their session stays theirs."""
    session = await sign_up(auth)
    first, second = google_account(), google_account()
    finished = await _connect(auth, session["access_token"], first)
    await _connect(auth, session["access_token"], second)
    assert (await auth.client.get("/v1/auth/me", headers=bearer(finished["at"]))).json()["id"] == session[
        "user_id"
    ]
    gmail = (await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["access_token"]))).json()
    assert sorted(g["email"] for g in gmail) == sorted([first, second])


async def test_reconnecting_the_same_google_account_keeps_its_account_id(auth: Harness) -> None:
    """Connecting a Google account again renews its row: other services' state keyed by its id stays valid."""
    session = await sign_up(auth)
    account = google_account()
    await _connect(auth, session["access_token"], account)
    await _connect(auth, session["access_token"], account)
    gmail = (await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["access_token"]))).json()
    assert len(gmail) == 1


async def test_a_connect_ticket_works_once(auth: Harness) -> None:
    """Opening a connect link a second time is refused."""
    session = await sign_up(auth)
    ticket = (
        await auth.client.post("/v1/auth/google/connect-tickets", headers=bearer(session["access_token"]))
    ).json()
    assert (await auth.client.get(path_and_query(ticket["url"]))).status_code == 302
    again = await auth.client.get(path_and_query(ticket["url"]))
    assert again.status_code == 400
    assert "already used" in again.json()["detail"]


async def test_connecting_without_a_ticket_is_refused(auth: Harness) -> None:
    """A navigation carries no bearer token: ``connect`` without a ticket cannot know whom to connect."""
    response = await auth.client.get("/v1/auth/google/authorize?purpose=connect")
    assert response.status_code == 422


async def test_metadata_scope_is_requested_only_when_the_user_opts_in(auth: Harness) -> None:
    """``metadata=true`` adds gmail.metadata to the consent and to the connected account's scopes."""
    session = await sign_up(auth)
    account = google_account()
    await _connect(auth, session["access_token"], account, metadata=True)
    gmail = (await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["access_token"]))).json()
    assert GMAIL_METADATA in gmail[0]["scopes"]


async def test_reply_detection_is_asked_through_the_connect_ticket_and_shown_as_the_tier(
    auth: Harness,
) -> None:
    """``{"reply_detection": true}`` makes a ticket whose link asks for gmail.metadata; the
    account then reads as reply-detection tier, a default connection as send-only."""
    session = await sign_up(auth)
    send_only, watched = google_account(), google_account()
    await _connect(auth, session["access_token"], send_only)
    ticket = await auth.client.post(
        "/v1/auth/google/connect-tickets",
        json={"reply_detection": True},
        headers=bearer(session["access_token"]),
    )
    assert ticket.status_code == 201, ticket.text
    assert "metadata=true" in ticket.json()["url"]
    trip = await google_round_trip(auth, path_and_query(ticket.json()["url"]), google_account=watched)
    assert "notice" not in trip.fragment
    gmail = (await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["access_token"]))).json()
    tiers = {g["email"]: g["reply_detection"] for g in gmail}
    assert tiers == {send_only: False, watched: True}
    unknown = await auth.client.post(
        "/v1/auth/google/connect-tickets", json={"replies": True}, headers=bearer(session["access_token"])
    )
    assert unknown.status_code == 400


async def test_a_send_only_account_is_upgraded_by_incremental_consent(auth: Harness) -> None:
    """Connecting the same Google account again with reply detection keeps its id and adds the
    scope; the authorization asks Google to include the scopes granted before."""
    session = await sign_up(auth)
    account = google_account()
    await _connect(auth, session["access_token"], account)
    before = (
        await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["access_token"]))
    ).json()
    ticket = await auth.client.post(
        "/v1/auth/google/connect-tickets",
        json={"reply_detection": True},
        headers=bearer(session["access_token"]),
    )
    trip = await google_round_trip(auth, path_and_query(ticket.json()["url"]), google_account=account)
    assert query_of(trip.start.headers["location"])["include_granted_scopes"] == "true"
    after = (await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["access_token"]))).json()
    assert [g["account_id"] for g in after] == [g["account_id"] for g in before]
    assert {GMAIL_SEND, GMAIL_METADATA} <= set(after[0]["scopes"])
    assert after[0]["reply_detection"] is True


async def test_unticking_reply_detection_connects_send_only_and_says_so(auth: Harness) -> None:
    """Granular consent: the user unticks gmail.metadata on Google's screen. The account is
    connected send-only, and the frontend is told in plain words what that means."""
    session = await sign_up(auth)
    account = google_account()
    untick = await auth.emulator.put(
        "/_emulator/consent", json={"email": account, "untick": [GMAIL_METADATA]}
    )
    assert untick.status_code == 200, untick.text
    fragment = await _connect(auth, session["access_token"], account, metadata=True)
    assert fragment["at"]
    assert fragment["rt"]
    assert fragment["declined_scopes"] == GMAIL_METADATA
    assert "replies and bounces are not detected" in fragment["notice"]
    gmail = (await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["access_token"]))).json()
    assert [(g["email"], g["reply_detection"]) for g in gmail] == [(account, False)]
    assert GMAIL_SEND in gmail[0]["scopes"]


def test_metadata_scope_is_refused_where_the_deployment_does_not_offer_it(auth: Harness) -> None:
    """Without the metadata tier, asking for it is a 422, and the default scopes stay send-only."""
    closed = msgspec.structs.replace(
        auth.settings, google=msgspec.structs.replace(auth.settings.google, metadata_tier=False)
    )
    assert GMAIL_METADATA not in requested_scopes(closed, metadata=False)
    with pytest.raises(Invalid):
        requested_scopes(closed, metadata=True)


async def test_a_tampered_state_is_refused(auth: Harness) -> None:
    """A callback whose state this service never issued is a 400; nothing is exchanged at Google."""
    trip = await google_round_trip(
        auth, "/v1/auth/google/authorize?purpose=signup", google_account=google_account(), complete=False
    )
    params = query_of(trip.callback_url)
    forged = f"/v1/auth/google/callback?code={params['code']}&state={params['state']}x"
    response = await auth.client.get(forged)
    assert response.status_code == 400
    assert not any(path == "/token" for path, _ in auth.google.requests)


async def test_a_callback_in_another_browser_is_refused(auth: Harness) -> None:
    """The state is bound to the browser that started the flow: without its cookie, 400."""
    trip = await google_round_trip(
        auth, "/v1/auth/google/authorize?purpose=signup", google_account=google_account(), complete=False
    )
    auth.client.cookies.clear()
    response = await auth.client.get(trip.callback_url)
    assert response.status_code == 400


async def test_a_replayed_callback_is_refused(auth: Harness) -> None:
    """The state is single-use: the same callback a second time is a 400."""
    trip = await google_round_trip(
        auth, "/v1/auth/google/authorize?purpose=signup", google_account=google_account()
    )
    assert "at" in trip.fragment
    replay = await auth.client.get(trip.callback_url)
    assert replay.status_code == 400


async def test_a_callback_to_the_other_redirect_uri_is_refused(auth: Harness) -> None:
    """A flow started for the v1 callback cannot be completed at the legacy one."""
    trip = await google_round_trip(
        auth, "/v1/auth/google/authorize?purpose=signup", google_account=google_account(), complete=False
    )
    legacy = trip.callback_url.replace("/v1/auth/google/callback", "/api/oauth/oauth2callback")
    assert (await auth.client.get(legacy)).status_code == 400


async def test_a_pkce_mismatch_is_refused_by_google(auth: Harness) -> None:
    """With another code verifier than the challenge's, Google refuses the code: error=invalid_grant."""
    trip = await google_round_trip(
        auth, "/v1/auth/google/authorize?purpose=signup", google_account=google_account(), complete=False
    )
    async with auth.engine.begin() as connection:
        await connection.execute(text("UPDATE auth.oauth_states SET code_verifier = :v"), {"v": "x" * 64})
    finish = await auth.client.get(trip.callback_url)
    assert finish.status_code == 302
    fragment = fragment_of(finish.headers["location"])
    assert fragment["error"] == "invalid_grant"
    assert "at" not in fragment


async def test_consent_denied_ends_on_the_frontend_with_the_error(auth: Harness) -> None:
    """When the user cancels on Google's page, Google returns error=access_denied: no session, no account."""
    start = await auth.client.get("/v1/auth/google/authorize?purpose=signup")
    state = query_of(start.headers["location"])["state"]
    finish = await auth.client.get(f"/v1/auth/google/callback?error=access_denied&state={state}")
    assert finish.status_code == 302
    fragment = fragment_of(finish.headers["location"])
    assert fragment["error"] == "access_denied"
    assert "at" not in fragment


async def test_disconnecting_revokes_at_google(auth: Harness, events: aio_pika.abc.AbstractQueue) -> None:
    """DELETE revokes the grant at Google, forgets the tokens and publishes GmailDisconnected."""
    session = await sign_up(auth)
    account = google_account()
    await _connect(auth, session["access_token"], account)
    gmail = (await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(session["access_token"]))).json()
    account_id = gmail[0]["account_id"]
    token = (
        await auth.client.post(
            f"/internal/auth/gmail-accounts/{account_id}/access-token", headers=auth.caller_headers("sender")
        )
    ).json()["access_token"]

    response = await auth.client.delete(
        f"/v1/auth/gmail-accounts/{account_id}", headers=bearer(session["access_token"])
    )
    assert response.status_code == 204
    assert any(path == "/revoke" for path, _ in auth.google.requests)
    profile = await auth.emulator.get("/oauth2/v3/userinfo", headers=bearer(token))
    assert profile.status_code == 401  # Google no longer honours the grant
    await next_event(events, c.GmailDisconnected, lambda event: event.account_id == account_id)
    after = await auth.client.post(
        f"/internal/auth/gmail-accounts/{account_id}/access-token", headers=auth.caller_headers("sender")
    )
    assert after.status_code == 404
    async with auth.engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT state, refresh_token, access_token FROM auth.gmail_accounts WHERE id = :id"),
                {"id": account_id},
            )
        ).one()
    assert (row.state, row.refresh_token, row.access_token) == ("disconnected", None, None)


async def test_another_users_gmail_account_cannot_be_disconnected(auth: Harness) -> None:
    """Someone else's account is a 404, and stays connected."""
    owner, intruder = await sign_up(auth), await sign_up(auth)
    await _connect(auth, owner["access_token"], google_account())
    account_id = (
        await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(owner["access_token"]))
    ).json()[0]["account_id"]
    response = await auth.client.delete(
        f"/v1/auth/gmail-accounts/{account_id}", headers=bearer(intruder["access_token"])
    )
    assert response.status_code == 404
    gmail = (await auth.client.get("/v1/auth/gmail-accounts", headers=bearer(owner["access_token"]))).json()
    assert gmail[0]["state"] == "connected"


async def test_a_google_only_account_is_deleted_only_soon_after_signing_in(auth: Harness) -> None:
    """Without a password to ask for, deleting needs a session signed in within the last 10 minutes;
    renewing the tokens of an older session does not count, signing in with Google again does."""
    account = google_account()
    auth.clock.shift(-timedelta(minutes=11))
    trip = await google_round_trip(auth, "/v1/auth/google/authorize?purpose=signup", google_account=account)
    auth.clock.reset()
    renewed = await auth.client.post("/v1/auth/refresh", json={"refresh_token": trip.fragment["rt"]})
    assert renewed.status_code == 200
    stale = await auth.client.delete("/v1/auth/me", headers=bearer(renewed.json()["access_token"]))
    assert stale.status_code == 403, stale.text
    assert "sign in with Google again" in stale.json()["detail"]
    again = await google_round_trip(auth, "/v1/auth/google/authorize?purpose=signin", google_account=account)
    fresh = await auth.client.delete("/v1/auth/me", headers=bearer(again.fragment["at"]))
    assert fresh.status_code == 204, fresh.text
