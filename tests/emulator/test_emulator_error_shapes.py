"""Google's error shapes: the in-the-wild ones as faults (GMAIL_FACTS.md 2.5b), unknown routes, the
JSON send path's 1 MiB limit, and resumable uploads (the path for large messages)."""

from __future__ import annotations

from typing import Any

import httpx

from mailmerger_emulator.google.errors import google_timestamp
from tests.emulator.helpers import (
    PUBLIC_URL,
    FakeClock,
    bearer,
    build_message,
    encode_raw,
    mint_token,
    send,
)
from tests.emulator.test_emulator_faults import add_fault


async def faulted_send(client: httpx.AsyncClient, **rule: Any) -> httpx.Response:
    token = await mint_token(client)
    await add_fault(client, {"kind": "error", "count": 1, "methods": ["messages.send"], **rule})
    return await send(client, token, build_message())


async def test_resource_exhausted_fault(emulator: httpx.AsyncClient) -> None:
    answer = await faulted_send(emulator, shape="resource_exhausted")
    assert answer.status_code == 429
    assert answer.json() == {
        "error": {
            "errors": [
                {
                    "domain": "global",
                    "reason": "rateLimitExceeded",
                    "message": "Resource has been exhausted (e.g. check quota).",
                }
            ],
            "code": 429,
            "message": "Resource has been exhausted (e.g. check quota).",
            "status": "RESOURCE_EXHAUSTED",
        }
    }


async def test_quota_metric_fault(emulator: httpx.AsyncClient) -> None:
    """403 rateLimitExceeded "Quota exceeded for quota metric 'Queries' …"."""
    answer = await faulted_send(emulator, shape="quota_metric")
    error = answer.json()["error"]
    assert answer.status_code == 403
    assert error["errors"][0]["reason"] == "rateLimitExceeded"
    assert error["message"].startswith("Quota exceeded for quota metric 'Queries' ")
    assert error["details"][0]["reason"] == "RATE_LIMIT_EXCEEDED"


async def test_mail_sending_retry_after_fault(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    """429 "User-rate limit exceeded.  Retry after <now + retry_after_seconds> (Mail sending)"."""
    answer = await faulted_send(emulator, shape="mail_sending", retry_after_seconds=7200)
    assert answer.status_code == 429
    expected = f"User-rate limit exceeded.  Retry after {google_timestamp(clock() + 7200)} (Mail sending)"
    assert answer.json()["error"]["message"] == expected


async def test_retry_after_without_mail_sending_fault(emulator: httpx.AsyncClient, clock: FakeClock) -> None:
    answer = await faulted_send(emulator, shape="retry_after", retry_after_seconds=60)
    assert answer.status_code == 429
    message = answer.json()["error"]["message"]
    assert message == f"User-rate limit exceeded.  Retry after {google_timestamp(clock() + 60)}"


async def test_unauthenticated_fault(emulator: httpx.AsyncClient) -> None:
    """401 with "status": "UNAUTHENTICATED" and the long message."""
    answer = await faulted_send(emulator, shape="unauthenticated")
    error = answer.json()["error"]
    assert answer.status_code == 401
    assert error["status"] == "UNAUTHENTICATED"
    assert error["message"].startswith("Request had invalid authentication credentials. Expected OAuth 2")
    assert error["errors"][0]["reason"] == "authError"
    assert "invalid_token" in answer.headers["www-authenticate"]


async def test_scope_insufficient_fault(emulator: httpx.AsyncClient) -> None:
    """403 with details[].reason ACCESS_TOKEN_SCOPE_INSUFFICIENT and an insufficient_scope challenge."""
    answer = await faulted_send(emulator, shape="scope_insufficient")
    assert answer.status_code == 403
    assert answer.json()["error"]["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]


async def test_faults_apply_to_reading_methods(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    await add_fault(emulator, {"kind": "error", "count": 1, "methods": ["history.list"], "status": 500})
    answer = await emulator.get(
        "/gmail/v1/users/me/history", params={"startHistoryId": 1}, headers=bearer(token)
    )
    assert answer.status_code == 500


async def test_unknown_gmail_route_is_googles_404(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    answer = await emulator.get("/gmail/v1/users/me/nothing-here", headers=bearer(token))
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


async def test_wrong_method_on_a_gmail_route_is_googles_404(emulator: httpx.AsyncClient) -> None:
    answer = await emulator.delete("/gmail/v1/users/me/profile")
    assert answer.status_code == 404
    assert answer.json()["error"]["status"] == "NOT_FOUND"


async def test_unknown_admin_route_keeps_the_framework_404(emulator: httpx.AsyncClient) -> None:
    answer = await emulator.get("/_emulator/nothing-here")
    assert answer.status_code == 404
    assert "error" not in answer.json()


async def test_json_send_over_one_mib_is_413(emulator: httpx.AsyncClient) -> None:
    """The JSON path refuses a body over 1048576 bytes with 413 (GMAIL_FACTS.md 2.5b)."""
    token = await mint_token(emulator)
    big = build_message(attachment=("big.pdf", b"x" * 800_000))
    answer = await send(emulator, token, big)
    assert answer.status_code == 413
    error = answer.json()["error"]
    assert error["message"] == "Request payload size exceeds the limit: 1048576 bytes."
    assert (await emulator.get("/_emulator/messages/total")).json()["total"] == 0


async def test_upload_path_takes_what_the_json_path_refuses(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    big = build_message(attachment=("big.pdf", b"x" * 800_000))
    answer = await emulator.post(
        "/upload/gmail/v1/users/me/messages/send",
        params={"uploadType": "media"},
        content=big,
        headers={**bearer(token), "Content-Type": "message/rfc822"},
    )
    assert answer.status_code == 200, answer.text


async def start_resumable(client: httpx.AsyncClient, token: str, path: str, metadata: dict[str, Any]) -> str:
    answer = await client.post(
        path,
        params={"uploadType": "resumable"},
        json=metadata,
        headers={**bearer(token), "X-Upload-Content-Type": "message/rfc822"},
    )
    assert answer.status_code == 200, answer.text
    location = answer.headers["location"]
    assert location.startswith(PUBLIC_URL + "/upload/gmail/v1/users/me/messages/send?uploadType=resumable")
    return location


async def test_resumable_upload_sends_the_message(emulator: httpx.AsyncClient) -> None:
    """POST starts a session (200 + Location); PUT of the bytes sends and answers the Message."""
    token = await mint_token(emulator)
    location = await start_resumable(emulator, token, "/upload/gmail/v1/users/me/messages/send", {})
    raw = build_message(attachment=("big.pdf", b"y" * 900_000))
    answer = await emulator.put(location, content=raw, headers={"Content-Type": "message/rfc822"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["labelIds"] == ["SENT"]
    stored = (await emulator.get(f"/_emulator/messages/{body['id']}")).json()
    assert stored["attachments"][0]["size"] == 900_000


async def test_resumable_upload_keeps_the_thread(emulator: httpx.AsyncClient) -> None:
    """threadId in the start request's metadata threads the uploaded message."""
    token = await mint_token(emulator)
    first = (await send(emulator, token, build_message(message_id="<r1@mm.test>"))).json()
    location = await start_resumable(
        emulator, token, "/resumable/upload/gmail/v1/users/me/messages/send", {"threadId": first["threadId"]}
    )
    follow_up = build_message(subject="Re: Hello", in_reply_to="<r1@mm.test>", references="<r1@mm.test>")
    answer = await emulator.put(location, content=follow_up)
    assert answer.json()["threadId"] == first["threadId"]


async def test_resumable_session_is_used_once(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    location = await start_resumable(emulator, token, "/upload/gmail/v1/users/me/messages/send", {})
    assert (await emulator.put(location, content=build_message())).status_code == 200
    again = await emulator.put(location, content=build_message())
    assert again.status_code == 404


async def test_resumable_start_needs_credentials(emulator: httpx.AsyncClient) -> None:
    answer = await emulator.post(
        "/upload/gmail/v1/users/me/messages/send", params={"uploadType": "resumable"}, json={}
    )
    assert answer.status_code == 401


async def test_resumable_put_with_an_unknown_session_is_404(emulator: httpx.AsyncClient) -> None:
    answer = await emulator.put(
        "/upload/gmail/v1/users/me/messages/send",
        params={"uploadType": "resumable", "upload_id": "nope"},
        content=build_message(),
    )
    assert answer.status_code == 404


async def test_json_send_still_takes_small_messages(emulator: httpx.AsyncClient) -> None:
    token = await mint_token(emulator)
    answer = await emulator.post(
        "/gmail/v1/users/me/messages/send", json={"raw": encode_raw(build_message())}, headers=bearer(token)
    )
    assert answer.status_code == 200


async def test_json_send_refused_for_size_costs_no_quota(emulator: httpx.AsyncClient) -> None:
    """The 413 comes before the call is charged: the user's only 100 units still send."""
    token = await mint_token(emulator)
    await emulator.patch("/_emulator/users/alice@gmail.local", json={"units_per_minute": 100})
    big = build_message(attachment=("big.pdf", b"x" * 800_000))
    assert (await send(emulator, token, big)).status_code == 413
    assert (await send(emulator, token, build_message())).status_code == 200
