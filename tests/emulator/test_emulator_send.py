"""``messages.send`` (JSON and upload forms): what Gmail accepts, what it refuses, what it stores."""

from __future__ import annotations

import base64
import json

import httpx

from tests.emulator.helpers import (
    SENDER,
    MakeEmulator,
    bearer,
    build_message,
    encode_raw,
    mint_token,
    send,
)


def error_of(answer: httpx.Response) -> tuple[int, str, str]:
    error = answer.json()["error"]
    return answer.status_code, error["errors"][0]["reason"], error["message"]


async def stored(client: httpx.AsyncClient) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = (await client.get("/_emulator/messages")).json()["messages"]
    return messages


async def test_send_returns_gmail_ids_and_sent_label(emulator: httpx.AsyncClient) -> None:
    """A message is accepted with 16-hex-digit id and thread id, labelled SENT."""
    answer = await send(emulator, await mint_token(emulator), build_message())
    body = answer.json()
    assert answer.status_code == 200
    assert len(body["id"]) == 16
    assert int(body["id"], 16)
    assert body["threadId"] == body["id"]
    assert body["labelIds"] == ["SENT"]


async def test_message_ids_increase(emulator: httpx.AsyncClient) -> None:
    """Later messages get larger ids, as Gmail's time-based ids do."""
    token = await mint_token(emulator)
    first = (await send(emulator, token, build_message())).json()["id"]
    second = (await send(emulator, token, build_message())).json()["id"]
    assert int(second, 16) > int(first, 16)


async def test_padded_standard_base64_is_accepted(emulator: httpx.AsyncClient) -> None:
    """Like any proto3 bytes field, raw may be padded and use the standard alphabet."""
    raw = base64.b64encode(build_message(subject="?>?>?>")).decode()
    answer = await emulator.post(
        "/gmail/v1/users/me/messages/send", json={"raw": raw}, headers=bearer(await mint_token(emulator))
    )
    assert answer.status_code == 200, answer.text


async def test_media_upload_sends_the_raw_message(emulator: httpx.AsyncClient) -> None:
    """uploadType=media takes the message/rfc822 bytes as the body."""
    answer = await emulator.post(
        "/upload/gmail/v1/users/me/messages/send",
        params={"uploadType": "media"},
        content=build_message(subject="Uploaded"),
        headers={**bearer(await mint_token(emulator)), "Content-Type": "message/rfc822"},
    )
    assert answer.status_code == 200
    assert (await stored(emulator))[0]["subject"] == "Uploaded"


async def test_multipart_upload_reads_metadata_and_message(emulator: httpx.AsyncClient) -> None:
    """uploadType=multipart takes JSON metadata (threadId) and the message as multipart/related."""
    token = await mint_token(emulator)
    first = (await send(emulator, token, build_message(message_id="<m1@x>"))).json()
    reply = build_message(subject="Re: Hello", in_reply_to="<m1@x>", references="<m1@x>")
    body = (
        b"--b0undary\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        + json.dumps({"threadId": first["threadId"]}).encode()
        + b"\r\n--b0undary\r\nContent-Type: message/rfc822\r\n\r\n"
        + reply
        + b"\r\n--b0undary--\r\n"
    )
    answer = await emulator.post(
        "/upload/gmail/v1/users/me/messages/send",
        params={"uploadType": "multipart"},
        content=body,
        headers={**bearer(token), "Content-Type": 'multipart/related; boundary="b0undary"'},
    )
    assert answer.status_code == 200
    assert answer.json()["threadId"] == first["threadId"]


async def test_media_upload_must_be_a_message(emulator: httpx.AsyncClient) -> None:
    """Uploaded media other than message/* is refused as Google words it."""
    answer = await emulator.post(
        "/upload/gmail/v1/users/me/messages/send",
        params={"uploadType": "media"},
        content=build_message(),
        headers={**bearer(await mint_token(emulator)), "Content-Type": "application/octet-stream"},
    )
    assert error_of(answer) == (
        400,
        "badRequest",
        "Media type 'application/octet-stream' is not supported. Valid media types: [message/*]",
    )


async def test_unsupported_upload_type_is_refused(emulator: httpx.AsyncClient) -> None:
    """An uploadType other than media, multipart or resumable is refused."""
    answer = await emulator.post(
        "/upload/gmail/v1/users/me/messages/send",
        params={"uploadType": "chunked"},
        content=b"",
        headers=bearer(await mint_token(emulator)),
    )
    assert answer.status_code == 400


async def test_user_id_may_be_the_account_address(emulator: httpx.AsyncClient) -> None:
    """userId is "me" or the authenticated account's own address (any case)."""
    answer = await send(emulator, await mint_token(emulator), build_message(), user_id="Alice@Gmail.local")
    assert answer.status_code == 200


async def test_other_user_id_is_delegation_denied(emulator: httpx.AsyncClient) -> None:
    """Another account's address as userId is 403 "Delegation denied"."""
    answer = await send(emulator, await mint_token(emulator), build_message(), user_id="bob@gmail.local")
    assert error_of(answer) == (403, "forbidden", "Delegation denied for bob@gmail.local")


async def test_missing_raw_is_bad_request(emulator: httpx.AsyncClient) -> None:
    """A body without raw gets Gmail's exact complaint."""
    answer = await emulator.post(
        "/gmail/v1/users/me/messages/send", json={}, headers=bearer(await mint_token(emulator))
    )
    assert error_of(answer) == (
        400,
        "badRequest",
        "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
    )


async def test_undecodable_raw_is_refused(emulator: httpx.AsyncClient) -> None:
    """raw that is not base64 fails to decode, like any bytes field."""
    answer = await emulator.post(
        "/gmail/v1/users/me/messages/send",
        json={"raw": "not base64!"},
        headers=bearer(await mint_token(emulator)),
    )
    assert answer.status_code == 400
    assert "Base64 decoding failed" in answer.json()["error"]["message"]


async def test_invalid_json_is_bad_request(emulator: httpx.AsyncClient) -> None:
    """A body that isn't JSON is refused with badRequest."""
    answer = await emulator.post(
        "/gmail/v1/users/me/messages/send", content=b"{raw:", headers=bearer(await mint_token(emulator))
    )
    assert error_of(answer)[:2] == (400, "badRequest")


async def test_message_without_recipient_is_refused(emulator: httpx.AsyncClient) -> None:
    """No To, Cc or Bcc: Gmail's exact "Recipient address required" body."""
    answer = await send(emulator, await mint_token(emulator), build_message(to=()))
    assert answer.json() == {
        "error": {
            "errors": [
                {"domain": "global", "reason": "invalidArgument", "message": "Recipient address required"}
            ],
            "code": 400,
            "message": "Recipient address required",
            "status": "INVALID_ARGUMENT",
        }
    }


async def test_malformed_to_header_is_refused(emulator: httpx.AsyncClient) -> None:
    """An address without a domain makes the To header invalid."""
    answer = await send(emulator, await mint_token(emulator), build_message(to=("bob",)))
    assert error_of(answer) == (400, "invalidArgument", "Invalid To header")


async def test_more_than_100_recipients_is_refused(emulator: httpx.AsyncClient) -> None:
    """To, Cc and Bcc together may name at most 100 recipients."""
    to = [f"to{i}@example.com" for i in range(50)]
    cc = [f"cc{i}@example.com" for i in range(40)]
    bcc = [f"bcc{i}@example.com" for i in range(11)]
    answer = await send(emulator, await mint_token(emulator), build_message(to=to, cc=cc, bcc=bcc))
    status, reason, message = error_of(answer)
    assert (status, reason) == (400, "invalidArgument")
    assert "Too many recipients" in message


async def test_exactly_100_recipients_is_accepted(emulator: httpx.AsyncClient) -> None:
    """The limit itself is allowed."""
    to = [f"to{i}@example.com" for i in range(100)]
    assert (await send(emulator, await mint_token(emulator), build_message(to=to))).status_code == 200


async def test_from_another_address_is_refused(emulator: httpx.AsyncClient) -> None:
    """A From that isn't the account's address is refused (the emulator has no send-as aliases)."""
    answer = await send(
        emulator, await mint_token(emulator), build_message(sender="Mallory <mallory@evil.test>")
    )
    status, reason, message = error_of(answer)
    assert (status, reason) == (400, "invalidArgument")
    assert message.startswith("Invalid From header")


async def test_from_with_display_name_and_other_case_is_accepted(emulator: httpx.AsyncClient) -> None:
    """The address is compared case-insensitively, ignoring the display name."""
    answer = await send(
        emulator, await mint_token(emulator), build_message(sender="Alice A <ALICE@gmail.local>")
    )
    assert answer.status_code == 200


async def test_missing_from_date_and_message_id_are_filled_in(emulator: httpx.AsyncClient) -> None:
    """Gmail completes a message with From (the account), Date and a Message-ID."""
    await send(emulator, await mint_token(emulator), build_message(sender=None))
    message = (await stored(emulator))[0]
    names = [header["name"] for header in message["headers"]]
    assert {"From", "Date", "Message-ID"} <= set(names)
    assert message["from"] == SENDER
    assert str(message["rfc822MessageId"]).endswith("@mail.gmail.com>")


async def test_message_over_the_size_limit_is_refused(make_emulator: MakeEmulator) -> None:
    """A message larger than max_message_bytes is refused with Google's payload-size error."""
    client = await make_emulator(max_message_bytes=10_000)
    token = await mint_token(client)
    answer = await send(client, token, build_message(attachment=("big.pdf", b"x" * 20_000)))
    assert error_of(answer) == (400, "badRequest", "Request payload size exceeds the limit: 10000 bytes.")
    assert (await send(client, token, build_message())).status_code == 200


async def test_bcc_is_stripped_from_the_stored_copy_but_recorded(emulator: httpx.AsyncClient) -> None:
    """The kept message has no Bcc header (nor in raw), while the Bcc recipients are recorded."""
    token = await mint_token(emulator)
    sent = (await send(emulator, token, build_message(bcc=("hidden@example.com",)))).json()
    message = (await stored(emulator))[0]
    assert message["bcc"] == ["hidden@example.com"]
    assert all(header["name"].lower() != "bcc" for header in message["headers"])
    raw = await emulator.get(
        f"/gmail/v1/users/me/messages/{sent['id']}", params={"format": "raw"}, headers=bearer(token)
    )
    assert b"hidden@example.com" not in base64.urlsafe_b64decode(raw.json()["raw"])


async def test_raw_round_trips_byte_for_byte(emulator: httpx.AsyncClient) -> None:
    """format=raw returns exactly the submitted message when Gmail had nothing to add."""
    token = await mint_token(emulator)
    original = build_message(message_id="<exact@x>", attachment=("a.pdf", b"%PDF-1.4 data"))
    original = b"Date: Tue, 24 Nov 2026 10:00:00 +0000\n" + original
    sent = (await send(emulator, token, original)).json()
    raw = await emulator.get(
        f"/gmail/v1/users/me/messages/{sent['id']}", params={"format": "raw"}, headers=bearer(token)
    )
    assert base64.urlsafe_b64decode(raw.json()["raw"]) == original
    assert encode_raw(original)
