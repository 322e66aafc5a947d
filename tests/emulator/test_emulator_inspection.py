"""The operator API: test users, minted tokens, delivered messages, counts and the HTML mailbox."""

from __future__ import annotations

import httpx

from tests.emulator.helpers import GMAIL_SEND, bearer, build_message, mint_token, people, send


async def test_messages_show_decoded_content(emulator: httpx.AsyncClient) -> None:
    """A delivered message is listed decoded: recipients, subject, bodies and attachment facts."""
    token = await mint_token(emulator)
    raw = build_message(
        to=("Bob B <bob@example.com>",),
        cc=("carol@example.com",),
        subject="Ünïcode subject",
        text="Plain body",
        html="<p>HTML body</p>",
        attachment=("resume.pdf", b"%PDF-1.7" + b"\0" * 992),
        message_id="<inspect@x>",
    )
    sent = (await send(emulator, token, raw)).json()
    message = (await emulator.get("/_emulator/messages", params={"user": "alice@gmail.local"})).json()[
        "messages"
    ][0]
    assert (message["id"], message["threadId"]) == (sent["id"], sent["threadId"])
    assert message["rfc822MessageId"] == "<inspect@x>"
    assert (message["to"], message["cc"]) == (["bob@example.com"], ["carol@example.com"])
    assert message["subject"] == "Ünïcode subject"
    assert message["text"].strip() == "Plain body"
    assert message["html"].strip() == "<p>HTML body</p>"
    assert message["attachments"] == [
        {
            "filename": "resume.pdf",
            "contentType": "application/pdf",
            "size": 1000,
            "contentId": None,
            "inline": False,
        }
    ]
    assert {"name": "Subject", "value": "Ünïcode subject"} in message["headers"]


async def test_messages_filter_by_user_and_message_id(emulator: httpx.AsyncClient) -> None:
    """?user= and ?rfc822msgid= narrow the inspection list."""
    await send(emulator, await mint_token(emulator), build_message(message_id="<a@x>"))
    bob = await mint_token(emulator, email="bob@gmail.local")
    await send(emulator, bob, build_message(sender="bob@gmail.local", message_id="<b@x>"))
    by_user = (await emulator.get("/_emulator/messages", params={"user": "bob@gmail.local"})).json()[
        "messages"
    ]
    by_id = (await emulator.get("/_emulator/messages", params={"rfc822msgid": "a@x"})).json()["messages"]
    assert [m["rfc822MessageId"] for m in by_user] == ["<b@x>"]
    assert [m["user"] for m in by_id] == ["alice@gmail.local"]


async def test_counts_show_duplicates_per_message_id(emulator: httpx.AsyncClient) -> None:
    """Counts per RFC Message-ID prove "each email exactly once" (or catch a duplicate)."""
    token = await mint_token(emulator)
    await send(emulator, token, build_message(message_id="<once@x>"))
    await send(emulator, token, build_message(message_id="<twice@x>"))
    await send(emulator, token, build_message(message_id="<twice@x>"))
    assert (await emulator.get("/_emulator/messages/counts")).json() == {
        "counts": {"once@x": 1, "twice@x": 2},
        "total": 3,
    }


async def test_total_counts_every_copy(emulator: httpx.AsyncClient) -> None:
    """The cheap progress probe counts stored messages, duplicates included."""
    assert (await emulator.get("/_emulator/messages/total")).json() == {"total": 0}
    token = await mint_token(emulator)
    for message_id in ("<a@x>", "<b@x>", "<b@x>"):
        await send(emulator, token, build_message(message_id=message_id))
    assert (await emulator.get("/_emulator/messages/total")).json() == {"total": 3}


async def test_counts_filter_by_user(emulator: httpx.AsyncClient) -> None:
    """?user= counts one mailbox."""
    await send(emulator, await mint_token(emulator), build_message(message_id="<a@x>"))
    bob = await mint_token(emulator, email="bob@gmail.local")
    await send(emulator, bob, build_message(sender="bob@gmail.local", message_id="<b@x>"))
    counts = (await emulator.get("/_emulator/messages/counts", params={"user": "bob@gmail.local"})).json()
    assert counts == {"counts": {"b@x": 1}, "total": 1}


async def test_single_message_by_gmail_id(emulator: httpx.AsyncClient) -> None:
    """A message can be read by its Gmail id; an unknown id is 404."""
    sent = (await send(emulator, await mint_token(emulator), build_message())).json()
    assert (await emulator.get(f"/_emulator/messages/{sent['id']}")).json()["id"] == sent["id"]
    assert (await emulator.get("/_emulator/messages/ffff")).status_code == 404


async def test_mailbox_page_escapes_message_content(emulator: httpx.AsyncClient) -> None:
    """The HTML mailbox shows subject and bodies escaped, never as markup."""
    token = await mint_token(emulator)
    hostile = "<script>alert('x')</script>"
    sent = (await send(emulator, token, build_message(subject=hostile, text=hostile, html=hostile))).json()
    listing = await emulator.get("/_emulator/mailbox")
    page = await emulator.get(f"/_emulator/mailbox/{sent['id']}")
    assert listing.headers["content-type"].startswith("text/html")
    for html in (listing.text, page.text):
        assert "<script>" not in html
        assert "&lt;script&gt;" in html
    assert f"http://127.0.0.1:8090/_emulator/mailbox/{sent['id']}" in listing.text


async def test_mailbox_page_for_unknown_message_is_404(emulator: httpx.AsyncClient) -> None:
    """A message page for an unknown id is a 404."""
    assert (await emulator.get("/_emulator/mailbox/0123")).status_code == 404


async def test_users_can_be_created_and_listed(emulator: httpx.AsyncClient) -> None:
    """POST creates a test user (email lower-cased, a 21-digit sub); GET lists them."""
    created = await emulator.post(
        "/_emulator/users", json={"email": "New.User@Gmail.local", "name": "New User"}
    )
    assert created.status_code == 201
    assert created.json()["email"] == "new.user@gmail.local"
    assert len(created.json()["sub"]) == 21
    users = await people(emulator)
    assert [user["email"] for user in users] == ["new.user@gmail.local"]


async def test_creating_an_existing_user_conflicts(emulator: httpx.AsyncClient) -> None:
    """The same email twice is a 409."""
    await emulator.post("/_emulator/users", json={"email": "dup@gmail.local"})
    assert (await emulator.post("/_emulator/users", json={"email": "DUP@gmail.local"})).status_code == 409


async def test_invalid_user_email_is_refused(emulator: httpx.AsyncClient) -> None:
    """A test user needs an email address."""
    assert (await emulator.post("/_emulator/users", json={"email": "nobody"})).status_code == 400


async def test_patching_unknown_user_is_404(emulator: httpx.AsyncClient) -> None:
    """Account state can only be set on an existing test user."""
    answer = await emulator.patch("/_emulator/users/ghost@gmail.local", json={"status": "domain_policy"})
    assert answer.status_code == 404


async def test_patching_an_unknown_status_is_refused(emulator: httpx.AsyncClient) -> None:
    """Only the documented account states are accepted."""
    await emulator.post("/_emulator/users", json={"email": "x@gmail.local"})
    answer = await emulator.patch("/_emulator/users/x@gmail.local", json={"status": "suspended"})
    assert answer.status_code == 400


async def test_minted_tokens_work_like_oauth_ones(emulator: httpx.AsyncClient) -> None:
    """/_emulator/tokens gives a refresh token and an access token scoped as asked."""
    minted = (
        await emulator.post("/_emulator/tokens", json={"email": "m@gmail.local", "scopes": [GMAIL_SEND]})
    ).json()
    assert minted["scope"] == GMAIL_SEND
    assert minted["refresh_token"].startswith("1//")
    profile = await emulator.get("/gmail/v1/users/me/profile", headers=bearer(minted["access_token"]))
    assert profile.status_code == 403  # gmail.send alone can't read the profile


async def test_minting_unknown_scope_is_refused(emulator: httpx.AsyncClient) -> None:
    """Minting validates scopes like the authorization endpoint."""
    answer = await emulator.post(
        "/_emulator/tokens", json={"email": "m@gmail.local", "scopes": ["gmail.all"]}
    )
    assert answer.status_code == 400


async def test_clearing_messages_keeps_users_and_tokens(emulator: httpx.AsyncClient) -> None:
    """DELETE /messages empties every mailbox; the same token sends again at once."""
    token = await mint_token(emulator)
    await send(emulator, token, build_message(message_id="<a@x>"))

    assert (await emulator.delete("/_emulator/messages")).json() == {"total": 0}

    assert (await emulator.get("/_emulator/messages/counts")).json() == {"counts": {}, "total": 0}
    assert (await send(emulator, token, build_message(message_id="<a@x>"))).status_code == 200
    assert (await emulator.get("/_emulator/messages/counts")).json() == {"counts": {"a@x": 1}, "total": 1}
