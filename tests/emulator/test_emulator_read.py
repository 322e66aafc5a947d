"""``getProfile``, ``messages.list`` and ``messages.get``, and the scopes each one needs."""

from __future__ import annotations

import httpx

from tests.emulator.helpers import (
    GMAIL_METADATA,
    GMAIL_READONLY,
    GMAIL_SEND,
    bearer,
    build_message,
    mint_token,
    send,
)

INSUFFICIENT_SCOPES = {
    "error": {
        "errors": [
            {"domain": "global", "reason": "insufficientPermissions", "message": "Insufficient Permission"}
        ],
        "code": 403,
        "message": "Request had insufficient authentication scopes.",
        "status": "PERMISSION_DENIED",
    }
}


def insufficient_scopes(rpc: str) -> dict[str, object]:
    """Google's 403 for a token without the method's scope, with its ErrorInfo detail
    (GMAIL_FACTS.md 2.5b: ``details[].reason = ACCESS_TOKEN_SCOPE_INSUFFICIENT``)."""
    detail = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        "domain": "googleapis.com",
        "metadata": {"service": "gmail.googleapis.com", "method": f"caribou.api.proto.MailboxService.{rpc}"},
    }
    return {"error": {**INSUFFICIENT_SCOPES["error"], "details": [detail]}}


async def list_ids(client: httpx.AsyncClient, token: str, **params: str | int) -> dict[str, object]:
    answer = await client.get("/gmail/v1/users/me/messages", params=params, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


async def test_profile_counts_messages_and_threads(emulator: httpx.AsyncClient) -> None:
    """The profile names the account and counts its messages and threads."""
    token = await mint_token(emulator)
    await send(emulator, token, build_message())
    await send(emulator, token, build_message())
    profile = (await emulator.get("/gmail/v1/users/me/profile", headers=bearer(token))).json()
    assert profile["emailAddress"] == "alice@gmail.local"
    assert (profile["messagesTotal"], profile["threadsTotal"]) == (2, 2)
    assert int(profile["historyId"]) > 0


async def test_list_in_sent_is_newest_first(emulator: httpx.AsyncClient) -> None:
    """in:sent lists the account's messages by descending date, as ids and thread ids."""
    token = await mint_token(emulator)
    first = (await send(emulator, token, build_message())).json()
    second = (await send(emulator, token, build_message())).json()
    body = await list_ids(emulator, token, q="in:sent")
    assert body["messages"] == [
        {"id": second["id"], "threadId": second["threadId"]},
        {"id": first["id"], "threadId": first["threadId"]},
    ]
    assert body["resultSizeEstimate"] == 2


async def test_empty_list_omits_messages(emulator: httpx.AsyncClient) -> None:
    """Gmail leaves out ``messages`` when nothing matches."""
    body = await list_ids(emulator, await mint_token(emulator), q="in:sent")
    assert body == {"resultSizeEstimate": 0}


async def test_rfc822msgid_finds_the_message_with_or_without_brackets(emulator: httpx.AsyncClient) -> None:
    """rfc822msgid: matches the RFC Message-ID, angle brackets optional."""
    token = await mint_token(emulator)
    sent = (await send(emulator, token, build_message(message_id="<campaign-7.42@mailmerger.local>"))).json()
    await send(emulator, token, build_message(message_id="<other@mailmerger.local>"))
    for query in (
        "rfc822msgid:<campaign-7.42@mailmerger.local>",
        "rfc822msgid:campaign-7.42@mailmerger.local",
    ):
        body = await list_ids(emulator, token, q=query)
        assert body["messages"] == [{"id": sent["id"], "threadId": sent["threadId"]}]


async def test_rfc822msgid_combines_with_in_sent(emulator: httpx.AsyncClient) -> None:
    """Terms combine with AND: rfc822msgid plus in:sent finds it, plus in:inbox doesn't."""
    token = await mint_token(emulator)
    await send(emulator, token, build_message(message_id="<combo@x>"))
    found = await list_ids(emulator, token, q="rfc822msgid:<combo@x> in:sent")
    missed = await list_ids(emulator, token, q="rfc822msgid:<combo@x> in:inbox")
    assert found["resultSizeEstimate"] == 1
    assert "messages" not in missed


async def test_list_filters_by_recipient_and_subject(emulator: httpx.AsyncClient) -> None:
    """to: and subject: narrow the list."""
    token = await mint_token(emulator)
    await send(emulator, token, build_message(to=("zed@example.com",), subject="Invoice 12"))
    await send(emulator, token, build_message(to=("amy@example.com",), subject="Invoice 13"))
    body = await list_ids(emulator, token, q='to:zed@example.com subject:"invoice 12"')
    assert body["resultSizeEstimate"] == 1


async def test_list_pages_with_max_results_and_page_token(emulator: httpx.AsyncClient) -> None:
    """maxResults cuts a page; nextPageToken continues where it stopped, then is absent."""
    token = await mint_token(emulator)
    ids = [(await send(emulator, token, build_message())).json()["id"] for _ in range(5)]
    first = await list_ids(emulator, token, maxResults=2)
    second = await list_ids(emulator, token, maxResults=2, pageToken=str(first["nextPageToken"]))
    third = await list_ids(emulator, token, maxResults=2, pageToken=str(second["nextPageToken"]))
    pages = [first, second, third]
    seen = [message["id"] for page in pages for message in page["messages"]]
    assert seen == list(reversed(ids))
    assert "nextPageToken" not in third


async def test_unsupported_search_operator_is_refused(emulator: httpx.AsyncClient) -> None:
    """A search term the emulator can't answer faithfully is a 400, not a wrong answer."""
    answer = await emulator.get(
        "/gmail/v1/users/me/messages",
        params={"q": "has:attachment"},
        headers=bearer(await mint_token(emulator)),
    )
    assert answer.status_code == 400
    assert "does not support" in answer.json()["error"]["message"]


async def test_get_metadata_filters_headers(emulator: httpx.AsyncClient) -> None:
    """format=metadata with metadataHeaders returns just those headers, decoded."""
    token = await mint_token(emulator)
    sent = (await send(emulator, token, build_message(subject="Grüße", message_id="<meta@x>"))).json()
    answer = await emulator.get(
        f"/gmail/v1/users/me/messages/{sent['id']}",
        params=[("format", "metadata"), ("metadataHeaders", "Message-ID"), ("metadataHeaders", "subject")],
        headers=bearer(token),
    )
    body = answer.json()
    assert body["payload"]["headers"] == [
        {"name": "Subject", "value": "Grüße"},
        {"name": "Message-ID", "value": "<meta@x>"},
    ]
    assert body["labelIds"] == ["SENT"]
    assert body["threadId"] == sent["threadId"]


async def test_get_minimal_has_no_payload(emulator: httpx.AsyncClient) -> None:
    """format=minimal gives ids, labels, snippet, size and dates only."""
    token = await mint_token(emulator)
    sent = (await send(emulator, token, build_message(text="Hello there, friend"))).json()
    body = (
        await emulator.get(
            f"/gmail/v1/users/me/messages/{sent['id']}", params={"format": "minimal"}, headers=bearer(token)
        )
    ).json()
    assert "payload" not in body
    assert body["snippet"] == "Hello there, friend"
    assert int(body["sizeEstimate"]) > 0
    assert body["internalDate"].isdigit()


async def test_get_full_describes_the_mime_tree(emulator: httpx.AsyncClient) -> None:
    """format=full (the default) gives the parts with Gmail's part ids and the attachment's name."""
    token = await mint_token(emulator)
    sent = (
        await send(emulator, token, build_message(html="<p>Hi</p>", attachment=("cv.pdf", b"%PDF" * 10)))
    ).json()
    body = (await emulator.get(f"/gmail/v1/users/me/messages/{sent['id']}", headers=bearer(token))).json()
    payload = body["payload"]
    assert payload["mimeType"] == "multipart/mixed"
    assert [part["partId"] for part in payload["parts"]] == ["0", "1"]
    assert [part["partId"] for part in payload["parts"][0]["parts"]] == ["0.0", "0.1"]
    attachment = payload["parts"][1]
    assert (attachment["filename"], attachment["body"]["size"]) == ("cv.pdf", 40)


async def test_get_unknown_message_is_404(emulator: httpx.AsyncClient) -> None:
    """An id that names no message gets Google's notFound body."""
    answer = await emulator.get(
        "/gmail/v1/users/me/messages/18c0ffee00000000", headers=bearer(await mint_token(emulator))
    )
    assert answer.status_code == 404
    assert answer.json() == {
        "error": {
            "errors": [
                {"domain": "global", "reason": "notFound", "message": "Requested entity was not found."}
            ],
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
        }
    }


async def test_get_malformed_id_is_invalid_argument(emulator: httpx.AsyncClient) -> None:
    """A non-hex id is refused as invalid."""
    answer = await emulator.get(
        "/gmail/v1/users/me/messages/not-an-id", headers=bearer(await mint_token(emulator))
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "Invalid id value"


async def test_other_users_message_is_not_found(emulator: httpx.AsyncClient) -> None:
    """Mailboxes are separate: another account's message id is a 404."""
    sent = (await send(emulator, await mint_token(emulator), build_message())).json()
    other = await mint_token(emulator, email="bob@gmail.local")
    answer = await emulator.get(f"/gmail/v1/users/me/messages/{sent['id']}", headers=bearer(other))
    assert answer.status_code == 404


async def test_list_with_send_only_scope_is_insufficient(emulator: httpx.AsyncClient) -> None:
    """gmail.send cannot list: 403 insufficientPermissions, Google's body."""
    token = await mint_token(emulator, scopes=[GMAIL_SEND])
    answer = await emulator.get("/gmail/v1/users/me/messages", headers=bearer(token))
    assert answer.status_code == 403
    assert answer.json() == insufficient_scopes("ListMessages")
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]


async def test_profile_with_send_only_scope_is_insufficient(emulator: httpx.AsyncClient) -> None:
    """getProfile isn't open to gmail.send alone."""
    token = await mint_token(emulator, scopes=[GMAIL_SEND])
    answer = await emulator.get("/gmail/v1/users/me/profile", headers=bearer(token))
    assert answer.json() == insufficient_scopes("GetProfile")


async def test_send_with_read_only_scope_is_insufficient(emulator: httpx.AsyncClient) -> None:
    """gmail.readonly cannot send."""
    token = await mint_token(emulator, scopes=[GMAIL_READONLY])
    assert (await send(emulator, token, build_message())).json() == insufficient_scopes("SendMessage")


async def test_metadata_scope_reads_metadata(emulator: httpx.AsyncClient) -> None:
    """gmail.metadata lists and reads format=metadata."""
    sent = (await send(emulator, await mint_token(emulator), build_message())).json()
    token = await mint_token(emulator, scopes=[GMAIL_METADATA])
    assert (await list_ids(emulator, token))["resultSizeEstimate"] == 1
    answer = await emulator.get(
        f"/gmail/v1/users/me/messages/{sent['id']}", params={"format": "metadata"}, headers=bearer(token)
    )
    assert answer.status_code == 200


async def test_metadata_scope_refuses_q(emulator: httpx.AsyncClient) -> None:
    """A token holding gmail.metadata cannot search, even alongside gmail.readonly."""
    token = await mint_token(emulator, scopes=[GMAIL_METADATA, GMAIL_READONLY])
    answer = await emulator.get(
        "/gmail/v1/users/me/messages", params={"q": "rfc822msgid:<x@y>"}, headers=bearer(token)
    )
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == "Metadata scope does not support 'q' parameter"


async def test_metadata_scope_refuses_raw_and_full(emulator: httpx.AsyncClient) -> None:
    """format=raw and the default format=full are 403 for a gmail.metadata token."""
    sent = (await send(emulator, await mint_token(emulator), build_message())).json()
    token = await mint_token(emulator, scopes=[GMAIL_METADATA])
    raw = await emulator.get(
        f"/gmail/v1/users/me/messages/{sent['id']}", params={"format": "raw"}, headers=bearer(token)
    )
    full = await emulator.get(f"/gmail/v1/users/me/messages/{sent['id']}", headers=bearer(token))
    assert raw.json()["error"]["message"] == "Metadata scope doesn't allow format RAW"
    assert full.json()["error"]["message"] == "Metadata scope doesn't allow format FULL"


async def test_missing_authorization_is_login_required(emulator: httpx.AsyncClient) -> None:
    """No credentials at all is 401 with reason required."""
    answer = await emulator.get("/gmail/v1/users/me/profile")
    assert answer.status_code == 401
    assert answer.json()["error"]["errors"][0]["reason"] == "required"
