"""The reading side: history.list, messages.get formats, attachments, threads.get, labels.list,
the search operators, and what the metadata scope may not do (GMAIL_FACTS.md 2.2 and 2.5)."""

from __future__ import annotations

import base64
from typing import Any

import httpx

from tests.emulator.helpers import (
    GMAIL_METADATA,
    GMAIL_READONLY,
    GMAIL_SEND,
    SENDER,
    FakeClock,
    MakeEmulator,
    bearer,
    build_message,
    mint_token,
    send,
)

DAY = 86_400


async def gmail(client: httpx.AsyncClient, token: str, path: str, **params: Any) -> httpx.Response:
    return await client.get(f"/gmail/v1/users/me/{path}", params=params, headers=bearer(token))


async def ok(client: httpx.AsyncClient, token: str, path: str, **params: Any) -> dict[str, Any]:
    answer = await gmail(client, token, path, **params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def reply_to(client: httpx.AsyncClient, message_id: str, **extra: Any) -> dict[str, Any]:
    answer = await client.post(
        "/_emulator/incoming", json={"kind": "reply", "message_id": message_id, **extra}
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def history_id(client: httpx.AsyncClient, token: str) -> int:
    return int((await ok(client, token, "profile"))["historyId"])


# --- history.list ------------------------------------------------------------------------------


async def test_history_lists_messages_added_after_the_start(emulator: httpx.AsyncClient) -> None:
    """Changes after startHistoryId come as messagesAdded records, oldest first, with labels."""
    token = await mint_token(emulator, scopes=(GMAIL_SEND, GMAIL_METADATA))
    sent = (await send(emulator, token, build_message())).json()
    start = await history_id(emulator, token)
    reply = await reply_to(emulator, sent["id"])
    body = await ok(emulator, token, "history", startHistoryId=start)
    [record] = body["history"]
    assert record["messagesAdded"] == [
        {"message": {"id": reply["id"], "threadId": sent["threadId"], "labelIds": ["INBOX", "UNREAD"]}}
    ]
    assert record["messages"] == [{"id": reply["id"], "threadId": sent["threadId"]}]
    assert int(record["id"]) > start
    assert body["historyId"] == str(await history_id(emulator, token))


async def test_history_ids_increase_and_messages_carry_theirs(emulator: httpx.AsyncClient) -> None:
    """Each change raises the profile's historyId; a message's historyId is that of its change."""
    token = await mint_token(emulator)
    before = await history_id(emulator, token)
    sent = (await send(emulator, token, build_message())).json()
    after_send = await history_id(emulator, token)
    await reply_to(emulator, sent["id"])
    after_reply = await history_id(emulator, token)
    assert before < after_send < after_reply
    message = await ok(emulator, token, f"messages/{sent['id']}", format="minimal")
    assert int(message["historyId"]) == after_send


async def test_history_with_nothing_new_has_no_records(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    await send(emulator, token, build_message())
    current = await history_id(emulator, token)
    body = await ok(emulator, token, "history", startHistoryId=current)
    assert body == {"historyId": str(current)}


async def test_history_filters_by_label(emulator: httpx.AsyncClient) -> None:
    """labelId=INBOX keeps the received messages and leaves out what the owner sent."""
    token = await mint_token(emulator)
    start = await history_id(emulator, token)
    sent = (await send(emulator, token, build_message())).json()
    reply = await reply_to(emulator, sent["id"])
    everything = await ok(emulator, token, "history", startHistoryId=start)
    assert [r["messages"][0]["id"] for r in everything["history"]] == [sent["id"], reply["id"]]
    inbox = await ok(emulator, token, "history", startHistoryId=start, labelId="INBOX")
    assert [r["messages"][0]["id"] for r in inbox["history"]] == [reply["id"]]


async def test_history_types_other_than_message_added_are_empty(emulator: httpx.AsyncClient) -> None:
    """The emulator records only messageAdded: asking for labelAdded alone finds nothing."""
    token = await mint_token(emulator)
    start = await history_id(emulator, token)
    await send(emulator, token, build_message())
    body = await ok(emulator, token, "history", startHistoryId=start, historyTypes="labelAdded")
    assert "history" not in body
    added = await ok(emulator, token, "history", startHistoryId=start, historyTypes="messageAdded")
    assert len(added["history"]) == 1


async def test_history_unknown_type_is_invalid(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    answer = await gmail(emulator, token, "history", startHistoryId=1, historyTypes="messageRead")
    assert answer.status_code == 400


async def test_history_pages(emulator: httpx.AsyncClient) -> None:
    """maxResults cuts a page; pageToken continues after it without gaps or repeats."""
    token = await mint_token(emulator)
    start = await history_id(emulator, token)
    ids = [(await send(emulator, token, build_message())).json()["id"] for _ in range(5)]
    first = await ok(emulator, token, "history", startHistoryId=start, maxResults=2)
    second = await ok(
        emulator, token, "history", startHistoryId=start, maxResults=2, pageToken=first["nextPageToken"]
    )
    third = await ok(
        emulator, token, "history", startHistoryId=start, maxResults=2, pageToken=second["nextPageToken"]
    )
    assert "nextPageToken" not in third
    seen = [r["messages"][0]["id"] for page in (first, second, third) for r in page["history"]]
    assert seen == ids


async def test_history_needs_a_start(emulator: httpx.AsyncClient) -> None:
    answer = await gmail(emulator, await mint_token(emulator), "history")
    assert answer.status_code == 400


async def test_history_from_the_future_is_not_found(emulator: httpx.AsyncClient) -> None:
    """An id beyond the mailbox's current one answers Google's 404: the client does a full sync."""
    token = await mint_token(emulator)
    answer = await gmail(emulator, token, "history", startHistoryId=await history_id(emulator, token) + 10)
    assert answer.status_code == 404
    assert answer.json()["error"]["errors"][0]["reason"] == "notFound"


async def test_history_older_than_a_week_is_not_found(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    """Records are kept a week by default; a start id whose later changes expired answers 404."""
    token = await mint_token(emulator)
    start = await history_id(emulator, token)
    await send(emulator, token, build_message())
    clock.advance(7 * DAY - 1)
    token = await mint_token(emulator)  # access tokens last an hour
    assert (await gmail(emulator, token, "history", startHistoryId=start)).status_code == 200
    clock.advance(2)
    answer = await gmail(emulator, token, "history", startHistoryId=start)
    assert answer.status_code == 404
    current = await history_id(emulator, token)
    assert (await gmail(emulator, token, "history", startHistoryId=current)).status_code == 200


async def test_history_retention_is_configurable(make_emulator: MakeEmulator, clock: FakeClock) -> None:
    client = await make_emulator(history_retention_seconds=60)
    token = await mint_token(client)
    start = await history_id(client, token)
    await send(client, token, build_message())
    clock.advance(61)
    assert (await gmail(client, token, "history", startHistoryId=start)).status_code == 404


async def test_history_needs_a_read_scope(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator, scopes=(GMAIL_SEND,))
    assert (await gmail(emulator, token, "history", startHistoryId=1)).status_code == 403


# --- messages.get formats and attachments ------------------------------------------------------


async def test_metadata_format_gives_the_asked_headers(emulator: httpx.AsyncClient) -> None:
    """format=metadata with metadataHeaders: only those headers, no body."""
    token = await mint_token(emulator, scopes=(GMAIL_SEND, GMAIL_METADATA))
    sent = (await send(emulator, token, build_message(message_id="<m1@mm.test>"))).json()
    answer = await gmail(
        emulator,
        token,
        f"messages/{sent['id']}",
        format="metadata",
        metadataHeaders=["Message-ID", "Subject"],
    )
    payload = answer.json()["payload"]
    assert payload["headers"] == [
        {"name": "Subject", "value": "Hello"},
        {"name": "Message-ID", "value": "<m1@mm.test>"},
    ]
    assert "parts" not in payload
    assert "data" not in payload["body"]


async def test_minimal_format_has_no_payload(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    sent = (await send(emulator, token, build_message())).json()
    message = await ok(emulator, token, f"messages/{sent['id']}", format="minimal")
    assert set(message) == {
        "id",
        "threadId",
        "labelIds",
        "snippet",
        "sizeEstimate",
        "historyId",
        "internalDate",
    }


async def test_full_format_gives_attachment_ids_and_attachments_get_the_bytes(
    emulator: httpx.AsyncClient,
) -> None:
    """An attachment part carries body.attachmentId (no data); attachments.get returns its bytes."""
    token = await mint_token(emulator)
    pdf = b"%PDF-1.4 resume"
    sent = (await send(emulator, token, build_message(attachment=("cv.pdf", pdf)))).json()
    message = await ok(emulator, token, f"messages/{sent['id']}", format="full")
    [attachment] = [part for part in message["payload"]["parts"] if part["filename"] == "cv.pdf"]
    assert set(attachment["body"]) == {"attachmentId", "size"}
    assert attachment["body"]["size"] == len(pdf)
    got = await ok(emulator, token, f"messages/{sent['id']}/attachments/{attachment['body']['attachmentId']}")
    assert base64.urlsafe_b64decode(got["data"]) == pdf
    assert got["size"] == len(pdf)


async def test_unknown_attachment_is_not_found(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    sent = (await send(emulator, token, build_message())).json()
    assert (await gmail(emulator, token, f"messages/{sent['id']}/attachments/ANGjdJnope")).status_code == 404


async def test_metadata_scope_cannot_get_attachments(emulator: httpx.AsyncClient) -> None:
    """Attachments are bodies: gmail.metadata never reads them."""
    token = await mint_token(emulator, scopes=(GMAIL_SEND, GMAIL_METADATA))
    sent = (await send(emulator, token, build_message(attachment=("cv.pdf", b"x")))).json()
    answer = await gmail(emulator, token, f"messages/{sent['id']}/attachments/ANGjdJx")
    assert answer.status_code == 403


# --- threads.get -------------------------------------------------------------------------------


async def test_thread_holds_the_sent_message_and_the_reply(emulator: httpx.AsyncClient) -> None:
    """threads.get format=metadata lists the thread's messages oldest first, with headers."""
    token = await mint_token(emulator, scopes=(GMAIL_SEND, GMAIL_METADATA))
    sent = (await send(emulator, token, build_message(message_id="<t1@mm.test>"))).json()
    reply = await reply_to(emulator, sent["id"])
    thread = await ok(
        emulator, token, f"threads/{sent['threadId']}", format="metadata", metadataHeaders="In-Reply-To"
    )
    assert thread["id"] == sent["threadId"]
    assert [m["id"] for m in thread["messages"]] == [sent["id"], reply["id"]]
    assert thread["messages"][1]["payload"]["headers"] == [{"name": "In-Reply-To", "value": "<t1@mm.test>"}]
    assert thread["historyId"] == thread["messages"][1]["historyId"]


async def test_thread_minimal_and_full(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    sent = (await send(emulator, token, build_message())).json()
    minimal = await ok(emulator, token, f"threads/{sent['threadId']}", format="minimal")
    assert "payload" not in minimal["messages"][0]
    full = await ok(emulator, token, f"threads/{sent['threadId']}")
    assert full["messages"][0]["payload"]["mimeType"] == "text/plain"


async def test_metadata_scope_cannot_get_a_full_thread(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator, scopes=(GMAIL_SEND, GMAIL_METADATA))
    sent = (await send(emulator, token, build_message())).json()
    answer = await gmail(emulator, token, f"threads/{sent['threadId']}", format="full")
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == "Metadata scope doesn't allow format FULL"


async def test_unknown_thread_is_not_found(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    assert (await gmail(emulator, token, "threads/00000000000000ff")).status_code == 404


# --- labels.list -------------------------------------------------------------------------------


async def test_labels_list_has_the_system_labels(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator, scopes=(GMAIL_METADATA,))
    labels = (await ok(emulator, token, "labels"))["labels"]
    by_id = {label["id"]: label for label in labels}
    assert {"INBOX", "SENT", "UNREAD", "TRASH", "SPAM", "DRAFT"} <= set(by_id)
    assert by_id["INBOX"] == {
        "id": "INBOX",
        "name": "INBOX",
        "type": "system",
        "messageListVisibility": "show",
        "labelListVisibility": "labelShow",
    }


# --- search operators --------------------------------------------------------------------------


async def ids(client: httpx.AsyncClient, token: str, q: str) -> list[str]:
    body = await ok(client, token, "messages", q=q)
    return [m["id"] for m in body.get("messages", [])]


async def test_search_from_me_and_in_inbox(emulator: httpx.AsyncClient) -> None:
    """from:me finds what the owner sent; in:inbox and is:unread what arrived."""
    token = await mint_token(emulator)
    sent = (await send(emulator, token, build_message())).json()
    reply = await reply_to(emulator, sent["id"])
    assert await ids(emulator, token, "from:me") == [sent["id"]]
    assert await ids(emulator, token, "in:inbox") == [reply["id"]]
    assert await ids(emulator, token, "is:unread") == [reply["id"]]
    assert await ids(emulator, token, "is:read") == [sent["id"]]


async def test_search_newer_than(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    """newer_than:Nd / Nh counts back from the emulator's clock."""
    token = await mint_token(emulator)
    old = (await send(emulator, token, build_message())).json()
    clock.advance(2 * DAY)
    token = await mint_token(emulator)
    new = (await send(emulator, token, build_message())).json()
    assert await ids(emulator, token, "newer_than:1d") == [new["id"]]
    assert await ids(emulator, token, "newer_than:3d") == [new["id"], old["id"]]
    assert await ids(emulator, token, "newer_than:47h") == [new["id"]]
    assert await ids(emulator, token, "older_than:1d") == [old["id"]]


async def test_search_operators_combine_with_rfc822msgid(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    sent = (await send(emulator, token, build_message(message_id="<c1@mm.test>"))).json()
    await send(emulator, token, build_message(message_id="<c2@mm.test>"))
    assert await ids(emulator, token, "rfc822msgid:<c1@mm.test> from:me newer_than:1d") == [sent["id"]]
    assert await ids(emulator, token, "rfc822msgid:<c1@mm.test> in:inbox") == []


async def test_search_bad_age_is_invalid(emulator: httpx.AsyncClient) -> None:
    answer = await gmail(emulator, await mint_token(emulator), "messages", q="newer_than:soon")
    assert answer.status_code == 400


async def test_metadata_scope_refuses_q(emulator: httpx.AsyncClient) -> None:
    """With gmail.metadata, q is refused with Google's 403 (GMAIL_FACTS.md 2.5)."""
    token = await mint_token(emulator, scopes=(GMAIL_SEND, GMAIL_METADATA))
    answer = await gmail(emulator, token, "messages", q="in:inbox")
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == "Metadata scope does not support 'q' parameter"


# --- parameters and quota ----------------------------------------------------------------------


async def test_undeclared_query_parameter_is_refused(emulator: httpx.AsyncClient) -> None:
    """Google refuses a parameter the method does not declare rather than ignoring it."""
    answer = await gmail(emulator, await mint_token(emulator), "labels", format="full")
    assert answer.status_code == 400
    assert 'Unknown name "format"' in answer.json()["error"]["message"]


async def test_standard_parameters_are_accepted(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    assert (await gmail(emulator, token, "labels", alt="json", prettyPrint="false")).status_code == 200


async def test_reading_costs_units_per_method(emulator: httpx.AsyncClient) -> None:
    """history.list costs 2 units and messages.get 5 (GMAIL_FACTS.md 2.2)."""
    token = await mint_token(emulator, scopes=(GMAIL_SEND, GMAIL_READONLY))
    sent = (await send(emulator, token, build_message())).json()
    patch = await emulator.patch(f"/_emulator/users/{SENDER}", json={"units_per_minute": 107})
    assert patch.status_code == 200
    # 100 (the send) is already spent: 7 units left, one messages.get and one history.list.
    assert (await gmail(emulator, token, f"messages/{sent['id']}")).status_code == 200
    assert (await gmail(emulator, token, "history", startHistoryId=1)).status_code in (200, 404)
    refused = await gmail(emulator, token, "history", startHistoryId=1)
    assert refused.status_code == 403
    assert refused.json()["error"]["errors"][0]["reason"] == "userRateLimitExceeded"
