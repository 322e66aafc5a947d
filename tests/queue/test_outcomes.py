"""Outcome and account events through the real broker: idempotent, order-proof, owner-scoped."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_queue.outcomes.delivery import OutcomeWriter
from mailmerger_queue.settings import QueueSettings
from mailmerger_shared import contracts as c
from tests.queue.world import FakeClock, World


async def _dispatched(world: World, dispatcher: Dispatcher, **fields: Any) -> tuple[int, int, dict[str, Any]]:
    user, account = await world.user_with_account()
    email = await world.compose(user, account, **fields)
    assert await dispatcher.dispatch_due_messages() == 1
    await world.commands()
    return user, account, email


def _sent(email: dict[str, Any], account: int) -> c.EmailSent:
    return c.EmailSent(
        message_id=email["id"],
        account_id=account,
        gmail_id="g-1",
        thread_id="t-1",
        rfc_message_id=email["rfc_message_id"],
        sent_at=datetime.now(UTC),
    )


async def test_sent_event_marks_the_email_sent(world: World, dispatcher: Dispatcher) -> None:
    """EmailSent records Gmail's ids and closes the attempt as sent."""
    user, account, email = await _dispatched(world, dispatcher)
    await world.publish(_sent(email, account))
    sent = await world.wait_state(user, email["id"], "sent")
    assert (sent["gmail_id"], sent["thread_id"]) == ("g-1", "t-1")
    assert sent["attempts"][0]["outcome"] == "sent"
    assert [t["to_state"] for t in sent["transitions"]] == ["scheduled", "dispatched", "sent"]


async def test_a_redelivered_event_is_applied_once(world: World, dispatcher: Dispatcher) -> None:
    """The same envelope delivered twice is applied once, even after the email moved on."""
    user, account, email = await _dispatched(world, dispatcher)
    envelope = c.Envelope.new(c.EmailFailed.TAG)
    failed = c.EmailFailed(message_id=email["id"], account_id=account, reason="badRequest", detail="bad MIME")
    await world.publish(failed, envelope)
    await world.wait_state(user, email["id"], "failed")
    await world.client.post(f"/v1/emails/{email['id']}/send-now", headers=world.auth(user))
    await world.publish(failed, envelope)
    await world.consumed(envelope)
    final = await world.email(user, email["id"])
    assert [t["to_state"] for t in final["transitions"]] == ["scheduled", "dispatched", "failed", "scheduled"]


async def test_a_late_deferral_after_sent_changes_nothing(world: World, dispatcher: Dispatcher) -> None:
    """Out of order: EmailDeferred or EmailFailed arriving after EmailSent leave the email sent."""
    user, account, email = await _dispatched(world, dispatcher)
    await world.publish(_sent(email, account))
    await world.wait_state(user, email["id"], "sent")
    late = c.EmailDeferred(
        message_id=email["id"], account_id=account, retry_at=datetime.now(UTC), reason="backendError"
    )
    later = c.EmailFailed(message_id=email["id"], account_id=account, reason="x", detail="late")
    await world.consumed(await world.publish(late), await world.publish(later))
    final = await world.email(user, email["id"])
    assert final["state"] == "sent"
    assert [t["to_state"] for t in final["transitions"]] == ["scheduled", "dispatched", "sent"]


async def test_deferred_email_is_rescheduled_and_retried_as_attempt_two(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """EmailDeferred puts the email back to scheduled at retry_at; the retry carries attempt 2."""
    user, account, email = await _dispatched(world, dispatcher)
    retry_at = clock.now() + timedelta(minutes=5)
    await world.publish(
        c.EmailDeferred(message_id=email["id"], account_id=account, retry_at=retry_at, reason="backendError")
    )
    deferred = await world.wait_state(user, email["id"], "scheduled")
    assert datetime.fromisoformat(deferred["send_at"]) == retry_at
    assert deferred["attempts"][0]["outcome"] == "deferred"
    assert await dispatcher.dispatch_due_messages() == 0
    clock.advance(minutes=5)
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert (command.attempt, command.rfc_message_id) == (2, email["rfc_message_id"])


async def test_failed_and_unconfirmed_outcomes_are_recorded_with_their_reason(
    world: World, dispatcher: Dispatcher
) -> None:
    """EmailFailed and EmailUnconfirmed land in their states with reason and detail."""
    user, account, failing = await _dispatched(world, dispatcher)
    await world.publish(
        c.EmailFailed(
            message_id=failing["id"],
            account_id=account,
            reason="failedPrecondition",
            detail="Mail service not enabled",
        )
    )
    failed = await world.wait_state(user, failing["id"], "failed")
    assert (failed["outcome_reason"], failed["outcome_detail"]) == (
        "failedPrecondition",
        "Mail service not enabled",
    )
    other_user, other_account, unsure = await _dispatched(world, dispatcher)
    await world.publish(
        c.EmailUnconfirmed(
            message_id=unsure["id"],
            account_id=other_account,
            rfc_message_id=unsure["rfc_message_id"],
            detail="timeout",
        )
    )
    unconfirmed = await world.wait_state(other_user, unsure["id"], "unconfirmed")
    assert unconfirmed["attempts"][0]["outcome"] == "unconfirmed"


async def test_sent_found_after_a_dispatcher_crash_is_recorded(world: World) -> None:
    """A message still scheduled (publish happened, mark did not) is marked sent by EmailSent."""
    user, account = await world.user_with_account()
    email = await world.compose(user, account)
    await world.publish(_sent(email, account))
    sent = await world.wait_state(user, email["id"], "sent")
    assert sent["transitions"][-1]["from_state"] == "scheduled"


async def test_throttling_only_ever_extends_the_parking(world: World) -> None:
    """Whatever order two SenderThrottled arrive in, the later ``until`` and its reason stay."""
    _, account = await world.user_with_account()
    later = datetime.now(UTC) + timedelta(hours=3)
    first = await world.publish(c.SenderThrottled(account_id=account, until=later, reason="Mail sending"))
    second = await world.publish(
        c.SenderThrottled(account_id=account, until=later - timedelta(hours=2), reason="again")
    )
    await world.consumed(first, second)
    row = await world.sender_row(account)
    assert (row.parked_until, row.parked_reason) == (later, "Mail sending")


async def test_new_accounts_get_gmail_limits_by_kind(world: World, settings: QueueSettings) -> None:
    """A consumer Gmail account starts at 500/day, a Workspace one at 2,000/day, both at the
    configured per-minute default (150/min unless configured: these tests raise it)."""
    user = world.new_id()
    consumer = await world.connect(user, email="someone@gmail.com")
    workspace = await world.connect(user, email="someone@company.example")
    listed = {
        s["account_id"]: s for s in (await world.client.get("/v1/senders", headers=world.auth(user))).json()
    }
    per_minute = settings.dispatch.per_minute_limit
    assert (listed[consumer]["daily_limit"], listed[consumer]["per_minute_limit"]) == (500, per_minute)
    assert listed[workspace]["daily_limit"] == 2000


async def test_reconnecting_keeps_the_limits_the_user_chose(world: World) -> None:
    """Limits set with PATCH survive a disconnect and a new GmailConnected."""
    user, account = await world.user_with_account()
    await world.client.patch(f"/v1/senders/{account}", json={"daily_limit": 42}, headers=world.auth(user))
    await world.publish(c.GmailDisconnected(user_id=user, account_id=account))
    await world.connect(user, account_id=account)
    assert (await world.sender_row(account)).daily_limit == 42


async def test_an_older_account_event_never_overrides_a_newer_one(world: World) -> None:
    """A GmailDisconnected that occurred before the latest GmailConnected is ignored."""
    user, account = await world.user_with_account()
    stale = c.Envelope(
        id=uuid.uuid4(), tag=c.GmailDisconnected.TAG, occurred_at=datetime.now(UTC) - timedelta(minutes=5)
    )
    await world.consumed(await world.publish(c.GmailDisconnected(user_id=user, account_id=account), stale))
    assert (await world.sender_row(account)).state == "connected"


async def test_user_deleted_purges_everything_and_stays_purged(world: World, dispatcher: Dispatcher) -> None:
    """UserDeleted removes the user's emails and accounts; a late GmailConnected brings nothing back."""
    user, account, email = await _dispatched(world, dispatcher)
    await world.consumed(await world.publish(c.UserDeleted(user_id=user)))
    assert await world.sender_row(account) is None
    assert (await world.client.get(f"/v1/emails/{email['id']}", headers=world.auth(user))).status_code == 404
    late = c.GmailConnected(user_id=user, account_id=account, email="x@gmail.com", scopes=[])
    await world.consumed(await world.publish(late))
    assert await world.sender_row(account) is None


async def test_deleted_attachment_fails_the_scheduled_emails_that_use_it(world: World) -> None:
    """AttachmentDeleted fails scheduled emails referencing it, naming it; others are untouched."""
    user, account = await world.user_with_account()
    world.fake.add_attachment(user, 77)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with_it = await world.compose(user, account, attachment_ids=[77], send_at=later)
    without = await world.compose(user, account, send_at=later)
    await world.publish(c.AttachmentDeleted(user_id=user, attachment_id=77))
    failed = await world.wait_state(user, with_it["id"], "failed")
    assert failed["outcome_reason"] == "attachment_deleted"
    assert "77" in failed["outcome_detail"]
    assert (await world.email(user, without["id"]))["state"] == "scheduled"


async def test_senders_show_usage_and_refuse_foreign_or_bad_limits(
    world: World, dispatcher: Dispatcher
) -> None:
    """Usage counts the last 24 h; PATCH on another user's account is 404, bad values 400."""
    user, account, _ = await _dispatched(world, dispatcher)
    listed = (await world.client.get("/v1/senders", headers=world.auth(user))).json()
    assert listed[0]["sent_last_24h"] == 1
    intruder = world.new_id()
    foreign = await world.client.patch(
        f"/v1/senders/{account}", json={"daily_limit": 5}, headers=world.auth(intruder)
    )
    assert foreign.status_code == 404
    bad = await world.client.patch(
        f"/v1/senders/{account}", json={"daily_limit": 0}, headers=world.auth(user)
    )
    assert bad.status_code == 400
    assert "daily_limit" in bad.text


async def test_events_that_arrive_together_apply_in_order_and_once(
    world: World, dispatcher: Dispatcher
) -> None:
    """One group commit: a sent message's second EmailSent, a deferral followed by its EmailSent and
    the same envelope twice each apply exactly as they would one transaction at a time."""
    user, account = await world.user_with_account()
    emails = [await world.compose(user, account) for _ in range(3)]
    assert await dispatcher.dispatch_due_messages() == 3
    await world.commands()
    twice, deferred_then_sent, failed = emails
    deferral = c.EmailDeferred(
        message_id=deferred_then_sent["id"], account_id=account, retry_at=datetime.now(UTC), reason="x"
    )
    failure = c.EmailFailed(message_id=failed["id"], account_id=account, reason="badRequest", detail="d")
    failure_envelope = c.Envelope.new(c.EmailFailed.TAG)
    batch = [
        (_sent(twice, account), c.Envelope.new(c.EmailSent.TAG)),
        (deferral, c.Envelope.new(c.EmailDeferred.TAG)),
        (_sent(twice, account), c.Envelope.new(c.EmailSent.TAG)),
        (failure, failure_envelope),
        (_sent(deferred_then_sent, account), c.Envelope.new(c.EmailSent.TAG)),
        (failure, failure_envelope),
    ]
    assert world.infra.sessions is not None
    writer = OutcomeWriter(world.infra.sessions)
    await asyncio.gather(*(writer.apply(event, envelope) for event, envelope in batch))
    states = {e["id"]: await world.email(user, e["id"]) for e in emails}
    assert [t["to_state"] for t in states[twice["id"]]["transitions"]] == ["scheduled", "dispatched", "sent"]
    assert states[twice["id"]]["attempts"][0]["outcome"] == "sent"
    assert [t["to_state"] for t in states[deferred_then_sent["id"]]["transitions"]] == [
        "scheduled",
        "dispatched",
        "scheduled",
        "sent",
    ]
    assert [t["to_state"] for t in states[failed["id"]]["transitions"]] == [
        "scheduled",
        "dispatched",
        "failed",
    ]
