"""A message's next steps: resends as new generations, the user's choice for an unconfirmed message,
and the sweep that leaves no message stuck."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_queue.settings import QueueSettings
from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from tests.queue.world import FakeClock, World


async def _dispatched(world: World, dispatcher: Dispatcher) -> tuple[int, int, dict[str, Any]]:
    user, account = await world.user_with_account()
    email = await world.compose(user, account)
    assert await dispatcher.dispatch_due_messages() == 1
    await world.commands()
    return user, account, email


def _unconfirmed(email: dict[str, Any], account: int, generation: int = 0) -> c.EmailUnconfirmed:
    return c.EmailUnconfirmed(
        message_id=email["id"],
        account_id=account,
        rfc_message_id=email["rfc_message_id"],
        detail="the connection dropped; no scope can read the mailbox",
        generation=generation,
    )


def _failed(email: dict[str, Any], account: int, generation: int = 0) -> c.EmailFailed:
    return c.EmailFailed(
        message_id=email["id"], account_id=account, reason="badRequest", detail="no", generation=generation
    )


async def _ended(world: World, dispatcher: Dispatcher, kind: str) -> tuple[int, dict[str, Any]]:
    """A dispatched email that ended ``failed`` or ``unconfirmed``: its owner and the email."""
    user, account, email = await _dispatched(world, dispatcher)
    outcome = _failed(email, account) if kind == "failed" else _unconfirmed(email, account)
    await world.consumed(await world.publish(outcome))
    ended = await world.email(user, email["id"])
    assert ended["state"] == kind
    return user, ended


async def _launched_campaign(world: World, rows: int) -> tuple[int, int, int]:
    user, account = await world.user_with_account()
    world.fake.add_template(user, 5, subject="Hi {{name}}", html="<p>Dear {{name}}</p>")
    campaign = {"name": "C", "account_id": account, "template_id": 5, "template_version": 1}
    listed = "email,name\n" + "".join(f"r{i}@example.com,R{i}\n" for i in range(rows))
    campaign_id = await world.launch_campaign(user, campaign, listed)
    return user, account, campaign_id


async def _finish_campaign(
    world: World, dispatcher: Dispatcher, account: int, outcome: dict[str, str]
) -> list[c.SendEmail]:
    """Dispatch every message; each recipient ends as ``outcome`` says (default: sent)."""
    assert await dispatcher.dispatch_due_messages() > 0
    commands = await world.commands()
    envelopes = []
    for command in commands:
        kind = outcome.get(command.to[0], "sent")
        event: c.Message
        if kind == "unconfirmed":
            event = c.EmailUnconfirmed(
                message_id=command.message_id,
                account_id=account,
                rfc_message_id=command.rfc_message_id,
                detail="dropped",
            )
        elif kind == "failed":
            event = c.EmailFailed(
                message_id=command.message_id, account_id=account, reason="badRequest", detail="no"
            )
        else:
            event = c.EmailSent(
                message_id=command.message_id,
                account_id=account,
                gmail_id=f"g{command.message_id}",
                thread_id="t",
                rfc_message_id=command.rfc_message_id,
                sent_at=datetime.now(UTC),
            )
        envelopes.append(await world.publish(event))
    await world.consumed(*envelopes)
    await dispatcher.housekeeping()
    return commands


async def _results(world: World, user: int, campaign_id: int) -> dict[str, dict[str, str]]:
    answer = await world.client.get(f"/v1/campaigns/{campaign_id}/results.csv", headers=world.auth(user))
    return {row["address"]: row for row in csv.DictReader(io.StringIO(answer.text))}


async def _campaign(world: World, user: int, campaign_id: int) -> dict[str, Any]:
    answer = await world.client.get(f"/v1/campaigns/{campaign_id}", headers=world.auth(user))
    result: dict[str, Any] = answer.json()
    return result


# --- resends are new generations ---------------------------------------------------------------


async def test_send_now_on_a_failed_email_dispatches_a_new_generation(
    world: World, dispatcher: Dispatcher
) -> None:
    """Send-now on a failed email publishes generation 1, which the sender takes as new work."""
    user, email = await _ended(world, dispatcher, "failed")
    answer = await world.client.post(f"/v1/emails/{email['id']}/send-now", headers=world.auth(user))
    assert answer.status_code == 200, answer.text
    assert answer.json()["transitions"][-1]["reason"] == "sent again, asked by the user"
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert (command.attempt, command.generation) == (2, 1)


async def test_retry_failed_dispatches_each_failure_as_a_new_generation(
    world: World, dispatcher: Dispatcher
) -> None:
    """retry-failed on a completed campaign publishes the failed rows as generation 1."""
    user, account, campaign_id = await _launched_campaign(world, 2)
    await _finish_campaign(world, dispatcher, account, {"r1@example.com": "failed"})
    retried = await world.client.post(f"/v1/campaigns/{campaign_id}/retry-failed", headers=world.auth(user))
    assert retried.json() == {"retried": 1}
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert (command.to, command.generation) == (["r1@example.com"], 1)


async def test_an_outcome_of_an_older_generation_changes_nothing(
    world: World, dispatcher: Dispatcher
) -> None:
    """A failure of generation 0 arriving while the resend (generation 1) is in flight is ignored."""
    user, email = await _ended(world, dispatcher, "failed")
    await world.client.post(f"/v1/emails/{email['id']}/send-now", headers=world.auth(user))
    assert await dispatcher.dispatch_due_messages() == 1
    await world.commands()
    await world.consumed(await world.publish(_failed(email, email["account_id"], generation=0)))
    assert (await world.email(user, email["id"]))["state"] == "dispatched"
    await world.consumed(await world.publish(_failed(email, email["account_id"], generation=1)))
    assert (await world.email(user, email["id"]))["state"] == "failed"


async def test_send_now_on_an_unconfirmed_message_of_a_completed_campaign_sends_it(
    world: World, dispatcher: Dispatcher
) -> None:
    """The campaign runs again so the dispatcher takes the message (it used to stay scheduled)."""
    user, account, campaign_id = await _launched_campaign(world, 2)
    await _finish_campaign(world, dispatcher, account, {"r0@example.com": "unconfirmed"})
    assert (await _campaign(world, user, campaign_id))["state"] == "completed"
    unsure = (
        await world.client.get(
            "/v1/emails",
            params={"campaign_id": campaign_id, "state": "unconfirmed"},
            headers=world.auth(user),
        )
    ).json()["items"][0]
    answer = await world.client.post(f"/v1/emails/{unsure['id']}/send-now", headers=world.auth(user))
    assert answer.status_code == 200, answer.text
    assert "may get it twice" in answer.json()["transitions"][-1]["reason"]
    assert (await _campaign(world, user, campaign_id))["state"] == "running"
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert (command.message_id, command.generation) == (unsure["id"], 1)


async def test_send_now_refuses_a_message_of_a_cancelled_campaign(
    world: World, dispatcher: Dispatcher
) -> None:
    """A failed message of a cancelled campaign is never scheduled again: 409 saying why."""
    user, account, campaign_id = await _launched_campaign(world, 2)
    assert await dispatcher.dispatch_due_messages() == 2
    failing, _ = await world.commands()
    await world.consumed(await world.publish(_failed({"id": failing.message_id}, account)))
    cancelled = await world.client.post(f"/v1/campaigns/{campaign_id}/cancel", headers=world.auth(user))
    assert cancelled.status_code == 200, cancelled.text
    answer = await world.client.post(f"/v1/emails/{failing.message_id}/send-now", headers=world.auth(user))
    assert answer.status_code == 409
    assert "cancelled campaign" in answer.json()["detail"]


# --- the user's choice for an unconfirmed message ----------------------------------------------


async def test_resend_anyway_sends_an_unconfirmed_email_again_and_says_it_may_duplicate(
    world: World, dispatcher: Dispatcher
) -> None:
    """``resend_anyway`` schedules a new generation; the answer says the recipient may get it twice."""
    user, email = await _ended(world, dispatcher, "unconfirmed")
    answer = await world.client.post(
        f"/v1/emails/{email['id']}/resolve", json={"resolution": "resend_anyway"}, headers=world.auth(user)
    )
    assert answer.status_code == 200, answer.text
    resolved = answer.json()
    assert resolved["state"] == "scheduled"
    assert "the recipient may get it twice" in resolved["transitions"][-1]["reason"]
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert command.generation == 1


async def test_mark_as_sent_settles_an_unconfirmed_email_without_sending(
    world: World, dispatcher: Dispatcher
) -> None:
    """``mark_as_sent`` records the email sent, with a reason saying the user decided; nothing goes."""
    user, email = await _ended(world, dispatcher, "unconfirmed")
    answer = await world.client.post(
        f"/v1/emails/{email['id']}/resolve", json={"resolution": "mark_as_sent"}, headers=world.auth(user)
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["state"], answer.json()["outcome_reason"]) == ("sent", "marked_sent_by_user")
    assert await dispatcher.dispatch_due_messages() == 0


async def test_resolving_an_email_that_is_not_unconfirmed_is_a_conflict(world: World) -> None:
    """Only an unconfirmed email needs resolving; a scheduled one answers 409 naming its state."""
    user, account = await world.user_with_account()
    email = await world.compose(user, account)
    answer = await world.client.post(
        f"/v1/emails/{email['id']}/resolve", json={"resolution": "mark_as_sent"}, headers=world.auth(user)
    )
    assert answer.status_code == 409
    assert "scheduled" in answer.json()["detail"]


async def test_a_campaigns_unconfirmed_messages_marked_sent_show_in_its_results(
    world: World, dispatcher: Dispatcher
) -> None:
    """results.csv shows the unconfirmed rows, then, once the user marks them, sent by the user's word."""
    user, account, campaign_id = await _launched_campaign(world, 3)
    await _finish_campaign(world, dispatcher, account, {"r1@example.com": "unconfirmed"})
    before = await _results(world, user, campaign_id)
    assert before["r1@example.com"]["state"] == "unconfirmed"
    answer = await world.client.post(
        f"/v1/campaigns/{campaign_id}/resolve-unconfirmed",
        json={"resolution": "mark_as_sent"},
        headers=world.auth(user),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["resolved"] == 1
    after = await _results(world, user, campaign_id)
    assert (after["r1@example.com"]["state"], after["r1@example.com"]["reason"]) == (
        "sent",
        "marked_sent_by_user",
    )


async def test_a_campaigns_unconfirmed_messages_resent_anyway_say_they_may_duplicate(
    world: World, dispatcher: Dispatcher
) -> None:
    """resend_anyway on a campaign schedules its unconfirmed messages again; the note warns plainly."""
    user, account, campaign_id = await _launched_campaign(world, 3)
    await _finish_campaign(
        world, dispatcher, account, {"r0@example.com": "unconfirmed", "r2@example.com": "unconfirmed"}
    )
    answer = await world.client.post(
        f"/v1/campaigns/{campaign_id}/resolve-unconfirmed",
        json={"resolution": "resend_anyway"},
        headers=world.auth(user),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["resolved"] == 2
    assert "may get the email twice" in answer.json()["note"]
    assert await dispatcher.dispatch_due_messages() == 2
    assert {command.generation for command in await world.commands()} == {1}


# --- the sweep ------------------------------------------------------------------------------


async def test_the_sweep_reopens_a_completed_campaign_that_has_due_messages(
    world: World, dispatcher: Dispatcher
) -> None:
    """A campaign completed while one of its messages was (again) scheduled runs again and sends it."""
    user, _, campaign_id = await _launched_campaign(world, 1)
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:  # the race: completed after the resend
        await session.execute(
            text("UPDATE queue.campaigns SET state = 'completed', finished_at = now() WHERE id = :id"),
            {"id": campaign_id},
        )
    assert await dispatcher.dispatch_due_messages() == 0
    await dispatcher.housekeeping()
    assert (await _campaign(world, user, campaign_id))["state"] == "running"
    assert await dispatcher.dispatch_due_messages() == 1


async def test_the_sweep_cancels_a_scheduled_message_of_a_cancelled_campaign(
    world: World, dispatcher: Dispatcher
) -> None:
    """Nothing will ever send it, so it is cancelled, with a transition saying why."""
    user, _, campaign_id = await _launched_campaign(world, 1)
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        await session.execute(
            text("UPDATE queue.campaigns SET state = 'cancelled' WHERE id = :id"), {"id": campaign_id}
        )
    await dispatcher.housekeeping()
    [email] = (
        await world.client.get("/v1/emails", params={"campaign_id": campaign_id}, headers=world.auth(user))
    ).json()["items"]
    assert email["state"] == "cancelled"


async def test_the_sweep_gives_up_on_a_message_with_no_outcome_past_its_deadline(
    world: World, dispatcher: Dispatcher, clock: FakeClock, settings: QueueSettings
) -> None:
    """Dispatched and re-dispatched without any outcome until no_outcome_after: unconfirmed, which the
    user can resolve; the sender's own outcome still applies if it comes later."""
    user, account, email = await _dispatched(world, dispatcher)
    clock.advance(seconds=settings.dispatch.no_outcome_after_seconds - 1)
    await dispatcher.housekeeping()
    assert (await world.email(user, email["id"]))["state"] == "dispatched"
    clock.advance(seconds=2)
    await dispatcher.housekeeping()
    given_up = await world.email(user, email["id"])
    assert (given_up["state"], given_up["outcome_reason"]) == ("unconfirmed", "no_outcome")
    await world.consumed(await world.publish(_failed(email, account)))
    assert (await world.email(user, email["id"]))["state"] == "failed"


async def test_no_message_is_left_scheduled_or_dispatched_past_its_deadline(
    world: World, dispatcher: Dispatcher, clock: FakeClock, settings: QueueSettings
) -> None:
    """After the sweep, no due message waits on a campaign that will never run and none is in flight
    past no_outcome_after: each is sendable, cancelled or the user's to resolve."""
    other_user, _, in_flight = await _dispatched(world, dispatcher)
    user, account, campaign_id = await _launched_campaign(world, 3)
    await _finish_campaign(world, dispatcher, account, {"r0@example.com": "unconfirmed"})
    unsure = (
        await world.client.get(
            "/v1/emails",
            params={"campaign_id": campaign_id, "state": "unconfirmed"},
            headers=world.auth(user),
        )
    ).json()["items"][0]
    await world.client.post(f"/v1/emails/{unsure['id']}/send-now", headers=world.auth(user))
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:  # completed by a racing housekeeping
        await session.execute(
            text("UPDATE queue.campaigns SET state = 'completed' WHERE id = :id"), {"id": campaign_id}
        )
    clock.advance(seconds=settings.dispatch.no_outcome_after_seconds + 1)
    await dispatcher.housekeeping()
    async with transaction(world.infra.sessions) as session:
        stuck = (
            await session.execute(
                text(
                    "SELECT m.id FROM queue.messages m "
                    "LEFT JOIN queue.campaigns c ON c.id = m.campaign_id "
                    "LEFT JOIN queue.attempts a ON a.message_id = m.id AND a.attempt = m.attempt "
                    "WHERE (m.state = 'scheduled' AND m.send_at <= :now "
                    "       AND c.state IS NOT NULL AND c.state NOT IN ('running', 'paused')) "
                    "   OR (m.state = 'dispatched' AND a.dispatched_at < :deadline)"
                ),
                {
                    "now": clock.now(),
                    "deadline": clock.now() - timedelta(seconds=settings.dispatch.no_outcome_after_seconds),
                },
            )
        ).all()
    assert stuck == []
    assert (await world.email(other_user, in_flight["id"]))["state"] == "unconfirmed"
    assert await dispatcher.dispatch_due_messages() == 1
    assert [command.message_id for command in await world.commands()] == [unsure["id"]]


# --- campaigns pause themselves after a run of failures ----------------------------------------


async def _dispatch_all(
    world: World, dispatcher: Dispatcher, clock: FakeClock, count: int
) -> list[c.SendEmail]:
    """Dispatch ticks (a second apart, so pacing allows more) until ``count`` commands went, by id."""
    commands: list[c.SendEmail] = []
    for _ in range(count):
        await dispatcher.dispatch_due_messages()
        commands += await world.commands()
        if len(commands) >= count:
            break
        clock.advance(seconds=1)
    assert len(commands) == count
    return sorted(commands, key=lambda command: command.message_id)


async def _outcomes_in_order(world: World, account: int, commands: list[c.SendEmail], kinds: str) -> None:
    """Apply one outcome per command, in order: ``f`` failed, ``s`` sent."""
    for command, kind in zip(commands, kinds, strict=True):
        event: c.Message
        if kind == "f":
            event = _failed({"id": command.message_id}, account)
        else:
            event = c.EmailSent(
                message_id=command.message_id,
                account_id=account,
                gmail_id=f"g{command.message_id}",
                thread_id="t",
                rfc_message_id=command.rfc_message_id,
                sent_at=datetime.now(UTC),
            )
        await world.consumed(await world.publish(event))


async def test_a_campaign_pauses_itself_after_a_run_of_failures_saying_why(
    world: World, dispatcher: Dispatcher, clock: FakeClock, settings: QueueSettings
) -> None:
    """At campaign_failure_limit failures in a row the campaign is paused, its answer naming the
    count and the last failure."""
    limit = settings.dispatch.campaign_failure_limit
    user, account, campaign_id = await _launched_campaign(world, limit)
    commands = await _dispatch_all(world, dispatcher, clock, limit)
    await _outcomes_in_order(world, account, commands[:-1], "f" * (limit - 1))
    assert (await _campaign(world, user, campaign_id))["state"] == "running"
    await _outcomes_in_order(world, account, commands[-1:], "f")
    paused = await _campaign(world, user, campaign_id)
    assert paused["state"] == "paused"
    assert paused["paused_reason"] == (
        f"paused itself after {limit} consecutive failures (the last: badRequest: no); "
        "fix the cause, then resume it"
    )


async def test_a_sent_message_ends_the_run_of_failures(
    world: World, dispatcher: Dispatcher, clock: FakeClock, settings: QueueSettings
) -> None:
    """Failures with a success between them never add up to a run: the campaign keeps running."""
    limit = settings.dispatch.campaign_failure_limit
    user, account, campaign_id = await _launched_campaign(world, 2 * limit - 1)
    commands = await _dispatch_all(world, dispatcher, clock, 2 * limit - 1)
    await _outcomes_in_order(world, account, commands, "f" * (limit - 1) + "s" + "f" * (limit - 1))
    assert (await _campaign(world, user, campaign_id))["state"] == "running"


async def test_resuming_a_campaign_that_paused_itself_clears_the_reason_and_the_count(
    world: World, dispatcher: Dispatcher, clock: FakeClock, settings: QueueSettings
) -> None:
    """After resume the reason is gone and the run starts from zero: one more failure does not pause."""
    limit = settings.dispatch.campaign_failure_limit
    user, account, campaign_id = await _launched_campaign(world, limit + 1)
    commands = await _dispatch_all(world, dispatcher, clock, limit + 1)
    await _outcomes_in_order(world, account, commands[:limit], "f" * limit)
    resumed = await world.client.post(f"/v1/campaigns/{campaign_id}/resume", headers=world.auth(user))
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["state"], resumed.json()["paused_reason"]) == ("running", None)
    await _outcomes_in_order(world, account, commands[limit:], "f")
    assert (await _campaign(world, user, campaign_id))["state"] == "running"
