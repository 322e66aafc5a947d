"""The legacy client's routes: its envelope and field names, owner checks, real error statuses."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_queue.outcomes.accounts import apply_account_event
from mailmerger_queue.settings import DispatchSettings
from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from tests.queue.world import World
from tests.support import eventually

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


async def test_add_to_queue_without_gmail_queues_the_email(world: World) -> None:
    """No Gmail connected: the email is queued all the same (the old server let users connect later)."""
    user = world.new_id()
    headers = world.auth(user)
    assert _ok(await world.client.post("/api/queue/add-to-queue", json=EMAIL, headers=headers)) == {
        "queue_length": 1
    }
    [queued] = _ok(await world.client.get("/api/queue/get-email-queue", headers=headers))["emails"]
    assert (queued["uid"], queued["subject"], queued["is_sent"]) == (user, "Hello", False)


async def test_send_queued_without_gmail_hands_back_a_connect_url(world: World) -> None:
    """Sending the queue with no Gmail answers as send-email-now does: success false, a redirect_url."""
    user = world.new_id()
    headers = world.auth(user)
    _ok(await world.client.post("/api/queue/add-to-queue", json=EMAIL, headers=headers))
    [queued] = _ok(await world.client.get("/api/queue/get-email-queue", headers=headers))["emails"]
    response = await world.client.post("/api/queue/send-queued-emails", json=[queued["eid"]], headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["status_code"]) == (False, 200)
    assert body["data"]["redirect_url"].startswith(
        "http://gateway/api/oauth/gmail-authorize?purpose=authorize"
    )
    assert f"ticket-{user}" in body["data"]["redirect_url"]
    assert (await world.email(user, queued["eid"]))["send_at"] is None  # still held, not released


async def test_email_queued_before_gmail_is_sent_from_the_account_connected_later(
    world: World, dispatcher: Dispatcher
) -> None:
    """An email queued without Gmail is given the first account the user connects, and sent from it."""
    user = world.new_id()
    headers = world.auth(user)
    _ok(await world.client.post("/api/queue/add-to-queue", json=EMAIL, headers=headers))
    [queued] = _ok(await world.client.get("/api/queue/get-email-queue", headers=headers))["emails"]
    assert (await world.email(user, queued["eid"]))["account_id"] is None
    account = await world.connect(user)
    await world.connect(user)  # a second account, connected later, does not take it
    sent = _ok(
        await world.client.post("/api/queue/send-queued-emails", json=[queued["eid"]], headers=headers)
    )
    assert sent == {"sent_emails": [queued["eid"]]}
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert (command.message_id, command.account_id) == (queued["eid"], account)


async def test_scheduled_email_queued_before_gmail_waits_for_an_account(
    world: World, dispatcher: Dispatcher
) -> None:
    """An email due at its send_at but queued without Gmail is not dispatched until Gmail is connected."""
    user = world.new_id()
    due = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    _ok(
        await world.client.post(
            "/api/queue/add-to-queue", json={**EMAIL, "send_at": due}, headers=world.auth(user)
        )
    )
    assert await dispatcher.dispatch_due_messages() == 0
    account = await world.connect(user)
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert command.account_id == account


async def test_another_users_gmail_never_takes_an_email_queued_without_gmail(
    world: World, dispatcher: Dispatcher
) -> None:
    """An account connected by someone else leaves the email waiting for its owner's own account."""
    owner = world.new_id()
    due = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    _ok(
        await world.client.post(
            "/api/queue/add-to-queue", json={**EMAIL, "send_at": due}, headers=world.auth(owner)
        )
    )
    await world.user_with_account()
    assert await dispatcher.dispatch_due_messages() == 0
    [queued] = _ok(await world.client.get("/api/queue/get-email-queue", headers=world.auth(owner)))["emails"]
    assert (await world.email(owner, queued["eid"]))["account_id"] is None


async def test_email_queued_while_gmail_is_being_connected_is_given_that_account(world: World) -> None:
    """Queueing that races the GmailConnected being applied still ends with the email on the account."""
    assert world.infra.sessions is not None
    user, account = world.new_id(), world.new_id()
    connected = c.GmailConnected(
        user_id=user, account_id=account, email=f"race{user}@gmail.com", display_name=None, scopes=[]
    )
    now = datetime.now(UTC)
    async with transaction(world.infra.sessions) as session:
        await apply_account_event(session, connected, now, now, DispatchSettings())
        queueing = asyncio.create_task(
            world.client.post("/api/queue/add-to-queue", json=EMAIL, headers=world.auth(user))
        )
        await eventually(lambda: _waiting_for_the_user_lock(world, user))  # it saw no account, and waits
    _ok(await queueing)
    [queued] = _ok(await world.client.get("/api/queue/get-email-queue", headers=world.auth(user)))["emails"]
    assert (await world.email(user, queued["eid"]))["account_id"] == account


async def _waiting_for_the_user_lock(world: World, user_id: int) -> bool:
    """Whether a transaction waits for the user's queueing lock (a bigint key: classid, objid)."""
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        waiting = await session.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND (classid::bigint << 32 | objid::bigint)"
                " = hashtextextended('mailmerger.queue.unassigned', :user_id)"
            ),
            {"user_id": user_id},
        )
        return bool(waiting.scalar_one())
