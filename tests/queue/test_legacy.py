"""The legacy client's routes: its envelope and field names, owner checks, real error statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mailmerger_queue.dispatcher import Dispatcher
from tests.queue.world import World

EMAIL = {
    "subject": "Hello",
    "body": "<p>Hi</p>",
    "to_email": "ada@example.com",
    "cc_email": "",
    "bcc_email": None,
}


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert (body["success"], body["status_code"]) == (True, 200)
    assert isinstance(body["message"], str)
    data: dict[str, Any] = body["data"]
    return data


async def test_send_email_now_sends_from_the_first_connected_account(
    world: World, dispatcher: Dispatcher
) -> None:
    """send-email-now answers the new email id and the dispatcher sends it from the first account."""
    user, account = await world.user_with_account()
    await world.connect(user)  # a second account, connected later
    data = _ok(await world.client.post("/api/email/send-email-now", json=EMAIL, headers=world.auth(user)))
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert (command.message_id, command.account_id, command.html) == (data["email_id"], account, "<p>Hi</p>")


async def test_send_email_now_without_gmail_hands_back_a_connect_url(world: World) -> None:
    """No connected Gmail: HTTP 200, success false, and a redirect_url carrying a connect ticket."""
    user = world.new_id()
    response = await world.client.post("/api/email/send-email-now", json=EMAIL, headers=world.auth(user))
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False
    assert body["data"]["redirect_url"].startswith(
        "http://gateway/api/oauth/gmail-authorize?purpose=authorize"
    )
    assert f"ticket-{user}" in body["data"]["redirect_url"]


async def test_include_resume_attaches_the_designated_resume(world: World, dispatcher: Dispatcher) -> None:
    """include_resume: true attaches the resume storage designates; the queue shows include_resume."""
    user, _ = await world.user_with_account()
    resume = world.fake.add_attachment(user, 55, kind="resume")
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _ok(
        await world.client.post(
            "/api/queue/add-to-queue",
            json={**EMAIL, "include_resume": True, "send_at": later},
            headers=world.auth(user),
        )
    )
    queued = _ok(await world.client.get("/api/queue/get-email-queue", headers=world.auth(user)))
    assert queued["emails"][0]["include_resume"] is True
    _ok(
        await world.client.post(
            "/api/queue/send-queued-emails", json=[queued["emails"][0]["eid"]], headers=world.auth(user)
        )
    )
    await dispatcher.dispatch_due_messages()
    [command] = await world.commands()
    assert [a.object_key for a in command.attachments] == [resume.object_key]


async def test_include_resume_without_a_resume_is_a_real_422(world: World) -> None:
    """No resume uploaded: 422 in the envelope, saying what to do."""
    user, _ = await world.user_with_account()
    response = await world.client.post(
        "/api/email/send-email-now", json={**EMAIL, "include_resume": True}, headers=world.auth(user)
    )
    assert response.status_code == 422
    body = response.json()
    assert (body["success"], body["status_code"]) == (False, 422)
    assert "resume" in body["message"]


async def test_queue_holds_emails_until_sent_and_lists_only_unsent(
    world: World, dispatcher: Dispatcher
) -> None:
    """add-to-queue without send_at holds the email until send-queued-emails; sent ones leave the queue."""
    user, _ = await world.user_with_account()
    headers = world.auth(user)
    assert _ok(await world.client.post("/api/queue/add-to-queue", json=EMAIL, headers=headers)) == {
        "queue_length": 1
    }
    assert _ok(await world.client.post("/api/queue/add-to-queue", json=EMAIL, headers=headers)) == {
        "queue_length": 2
    }
    assert await dispatcher.dispatch_due_messages() == 0
    queue = _ok(await world.client.get("/api/queue/get-email-queue", headers=headers))
    first, second = queue["emails"]
    assert set(first) == {
        "eid",
        "uid",
        "subject",
        "body",
        "is_sent",
        "to_email",
        "cc_email",
        "bcc_email",
        "send_at",
        "include_resume",
    }
    assert (first["uid"], first["is_sent"], first["send_at"], first["cc_email"]) == (user, False, None, None)
    sent = _ok(await world.client.post("/api/queue/send-queued-emails", json=[first["eid"]], headers=headers))
    assert sent == {"sent_emails": [first["eid"]]}
    assert await dispatcher.dispatch_due_messages() == 1
    remaining = _ok(await world.client.get("/api/queue/get-email-queue", headers=headers))
    assert [e["eid"] for e in remaining["emails"]] == [second["eid"]]


async def test_delete_queue_email_removes_only_the_owners_emails(world: World) -> None:
    """Deleting another user's email id is a 404 and deletes nothing (the old server's defect)."""
    owner, _ = await world.user_with_account()
    intruder, _ = await world.user_with_account()
    _ok(await world.client.post("/api/queue/add-to-queue", json=EMAIL, headers=world.auth(owner)))
    [victim] = _ok(await world.client.get("/api/queue/get-email-queue", headers=world.auth(owner)))["emails"]
    _ok(await world.client.post("/api/queue/add-to-queue", json=EMAIL, headers=world.auth(intruder)))
    [own] = _ok(await world.client.get("/api/queue/get-email-queue", headers=world.auth(intruder)))["emails"]

    response = await world.client.request(
        "DELETE",
        "/api/queue/delete-queue-email",
        json=[own["eid"], victim["eid"]],
        headers=world.auth(intruder),
    )
    assert response.status_code == 404
    assert response.json()["success"] is False
    assert str(victim["eid"]) in response.json()["message"]
    assert (
        len(_ok(await world.client.get("/api/queue/get-email-queue", headers=world.auth(owner)))["emails"])
        == 1
    )
    refused = await world.client.post(
        "/api/queue/send-queued-emails", json=[victim["eid"]], headers=world.auth(intruder)
    )
    assert refused.status_code == 404

    deleted = _ok(
        await world.client.request(
            "DELETE", "/api/queue/delete-queue-email", json=[own["eid"]], headers=world.auth(intruder)
        )
    )
    assert deleted == {"deleted_emails_ids": [own["eid"]], "remaining_queue_length": 0}


async def test_legacy_errors_use_the_envelope_with_the_real_status(world: World) -> None:
    """A malformed body is 400 and a missing token 401, both in the legacy envelope."""
    user, _ = await world.user_with_account()
    bad = await world.client.post("/api/queue/add-to-queue", json={"subject": "x"}, headers=world.auth(user))
    assert bad.status_code == 400
    assert (bad.json()["success"], bad.json()["status_code"]) == (False, 400)
    assert "body" in bad.json()["message"] or "to_email" in bad.json()["message"]
    anonymous = await world.client.get("/api/queue/get-email-queue")
    assert anonymous.status_code == 401
    assert anonymous.json()["success"] is False
    invalid = await world.client.post(
        "/api/email/send-email-now", json={**EMAIL, "to_email": "nobody"}, headers=world.auth(user)
    )
    assert invalid.status_code == 422
    assert "to[0]" in invalid.json()["message"]
