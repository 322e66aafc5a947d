"""Sequences: follow-ups built once a step is sent, due after a delay, threaded, stopped per recipient."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from mailmerger_queue.compliance import suppression
from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_queue.models import campaigns, messages, recipients
from mailmerger_queue.sequences import stops
from mailmerger_queue.sequences.builder import FollowUpBuilder, open_follow_ups
from mailmerger_queue.sequences.domain import StopReason, follow_up_at, thread_subject
from mailmerger_queue.settings import QueueSettings
from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from tests.queue.fakes import FakeServices
from tests.queue.world import FakeClock, World

FIRST, SECOND, THIRD, OTHER = 5, 6, 7, 8


def _step(template_id: int, delay_hours: int, **options: Any) -> dict[str, Any]:
    return {"template_id": template_id, "template_version": 1, "delay_hours": delay_hours, **options}


async def _sequence(
    world: World, steps: list[dict[str, Any]], rows: list[str], **fields: Any
) -> tuple[int, int, int]:
    """A launched campaign with ``steps`` after the first email, to ``rows`` (names at example.com)."""
    user, account = await world.user_with_account()
    world.fake.add_template(user, FIRST, subject="Hi {{name}}", html="<p>Dear {{name}}</p>")
    world.fake.add_template(user, SECOND, subject="Following up {{name}}", html="<p>Again, {{name}}</p>")
    world.fake.add_template(user, THIRD, subject="Last try {{name}}", html="<p>Last, {{name}}</p>")
    world.fake.add_template(user, OTHER, subject="Other {{name}}", html="<p>Other {{name}}</p>")
    body = {
        "name": "Sequence",
        "account_id": account,
        "template_id": FIRST,
        "template_version": 1,
        "steps": steps,
        **fields,
    }
    listed = "email,name\n" + "".join(f"{name.lower()}@example.com,{name}\n" for name in rows)
    campaign_id = await world.launch_campaign(user, body, listed)
    return user, account, campaign_id


async def _send_due(
    world: World, dispatcher: Dispatcher, account: int, clock: FakeClock, *, sent_at: datetime | None = None
) -> list[c.SendEmail]:
    """Dispatch what is due and answer every command as sent by Gmail (a new thread per first email)."""
    while await dispatcher.dispatch_due_messages() > 0:
        clock.advance(seconds=1)  # the account's pace lets a tick take only a few
    commands = await world.commands()
    envelopes = [
        await world.publish(
            c.EmailSent(
                message_id=command.message_id,
                account_id=account,
                gmail_id=f"g{command.message_id}",
                thread_id=command.thread_id or f"thread-{command.to[0]}-{command.message_id}",
                rfc_message_id=command.rfc_message_id,
                sent_at=sent_at or clock.now(),
            )
        )
        for command in commands
    ]
    await world.consumed(*envelopes)
    return sorted(commands, key=lambda command: command.to[0])


async def _campaign(world: World, user: int, campaign_id: int) -> dict[str, Any]:
    response = await world.client.get(f"/v1/campaigns/{campaign_id}", headers=world.auth(user))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _messages(world: World, campaign_id: int) -> list[Any]:
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        rows = await session.execute(
            select(messages, recipients.c.row_number)
            .join(recipients, recipients.c.id == messages.c.recipient_id)
            .where(messages.c.campaign_id == campaign_id)
            .order_by(recipients.c.row_number, messages.c.step)
        )
        return list(rows)


async def test_a_follow_up_continues_the_thread_after_its_delay(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """Step 2 is built once step 1 is sent, due its delay later, in step 1's Gmail thread (threadId,
    In-Reply-To, References, "Re: " subject); step 3 answers step 2 and references both."""
    steps = [_step(SECOND, 24), _step(THIRD, 48)]
    user, account, campaign_id = await _sequence(world, steps, ["Ada"])
    assert [s["step"] for s in (await _campaign(world, user, campaign_id))["steps"]] == [2, 3]
    assert await builder.build_due(clock.now()) == 0  # nothing sent yet: nothing to follow up
    [first] = await _send_due(world, dispatcher, account, clock)
    assert (first.thread_id, first.in_reply_to, first.references) == (None, None, [])
    assert await builder.build_due(clock.now()) == 1
    assert await dispatcher.dispatch_due_messages() == 0  # not due before its delay
    clock.advance(hours=23)
    assert await dispatcher.dispatch_due_messages() == 0
    clock.advance(hours=1, seconds=1)
    [second] = await _send_due(world, dispatcher, account, clock)
    assert second.to == ["ada@example.com"]
    assert second.subject == "Re: Hi Ada"
    assert second.html == "<p>Again, Ada</p>"
    assert (second.thread_id, second.in_reply_to, second.references) == (
        f"thread-ada@example.com-{first.message_id}",
        first.rfc_message_id,
        [first.rfc_message_id],
    )
    assert await builder.build_due(clock.now()) == 1
    clock.advance(hours=48, seconds=1)
    [third] = await _send_due(world, dispatcher, account, clock)
    assert third.subject == "Re: Hi Ada"
    assert (third.thread_id, third.in_reply_to, third.references) == (
        second.thread_id,
        second.rfc_message_id,
        [first.rfc_message_id, second.rfc_message_id],
    )
    assert await builder.build_due(clock.now()) == 0  # the last step


async def test_a_new_thread_follow_up_has_no_thread_headers(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """A follow-up with same_thread false is a new email: its own subject, no threadId, In-Reply-To
    or References; a same-thread step after it continues the new thread."""
    steps = [_step(SECOND, 1, same_thread=False), _step(THIRD, 1)]
    _, account, _ = await _sequence(world, steps, ["Ada"])
    await _send_due(world, dispatcher, account, clock)
    await builder.build_due(clock.now())
    clock.advance(hours=1, seconds=1)
    [second] = await _send_due(world, dispatcher, account, clock)
    assert (second.subject, second.thread_id, second.in_reply_to, second.references) == (
        "Following up Ada",
        None,
        None,
        [],
    )
    await builder.build_due(clock.now())
    clock.advance(hours=1, seconds=1)
    [third] = await _send_due(world, dispatcher, account, clock)
    assert (third.subject, third.in_reply_to, third.references) == (
        "Re: Following up Ada",
        second.rfc_message_id,
        [second.rfc_message_id],
    )
    assert third.thread_id == f"thread-ada@example.com-{second.message_id}"


@pytest.mark.parametrize(
    ("sent", "hours", "due"),
    [
        (datetime(2026, 12, 4, 12, tzinfo=UTC), 24, datetime(2026, 12, 7, 12, tzinfo=UTC)),  # Fri → Mon
        (datetime(2026, 12, 4, 12, tzinfo=UTC), 48, datetime(2026, 12, 8, 12, tzinfo=UTC)),  # Fri → Tue
        (datetime(2026, 12, 5, 12, tzinfo=UTC), 1, datetime(2026, 12, 7, 1, tzinfo=UTC)),  # Sat → Mon 01:00
        (datetime(2026, 12, 1, 12, tzinfo=UTC), 24, datetime(2026, 12, 2, 12, tzinfo=UTC)),  # Tue → Wed
    ],
)
def test_a_business_day_delay_skips_the_weekend(sent: datetime, hours: int, due: datetime) -> None:
    """With business_days, only the campaign's weekdays count towards the delay."""
    assert follow_up_at(sent, hours, business_days=True, timezone="UTC", weekdays=[1, 2, 3, 4, 5]) == due
    assert follow_up_at(sent, hours, business_days=False, timezone="UTC", weekdays=[1, 2, 3, 4, 5]) == (
        sent + timedelta(hours=hours)
    )


def test_business_days_count_in_the_campaigns_time_zone() -> None:
    """Friday 23:30 UTC is already Saturday in Paris: a 1-hour business delay waits for Monday there."""
    sent = datetime(2026, 12, 4, 23, 30, tzinfo=UTC)
    due = follow_up_at(sent, 1, business_days=True, timezone="Europe/Paris", weekdays=[1, 2, 3, 4, 5])
    assert due == datetime(2026, 12, 6, 23, 0, tzinfo=UTC) + timedelta(hours=1)  # Mon 01:00 in Paris


def test_the_thread_subject_is_re_once() -> None:
    """The follow-up's subject is "Re: " and the first one, never "Re: Re:"."""
    assert (thread_subject("Hello"), thread_subject("Re: Hello"), thread_subject("RE: x")) == (
        "Re: Hello",
        "Re: Hello",
        "RE: x",
    )


async def test_a_business_day_follow_up_is_scheduled_after_the_weekend(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """The builder schedules a business-day step by the campaign's weekdays, from the step-1 sent time."""
    weekdays = {"weekdays": [1, 2, 3, 4, 5, 6, 7]}
    _, account, campaign_id = await _sequence(
        world, [_step(SECOND, 24, business_days=True)], ["Ada"], schedule=weekdays
    )
    friday = datetime.now(UTC) + timedelta(days=7)
    friday = (friday + timedelta(days=(5 - friday.isoweekday()) % 7)).replace(
        hour=12, minute=0, second=0, microsecond=0
    )
    await _send_due(world, dispatcher, account, clock, sent_at=friday)
    # Business days from here on: Monday to Friday (the first email went on whatever day today is).
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        await session.execute(
            campaigns.update().where(campaigns.c.id == campaign_id).values(weekdays=[1, 2, 3, 4, 5])
        )
    assert await builder.build_due(clock.now()) == 1
    follow_up = (await _messages(world, campaign_id))[1]
    assert (follow_up.step, follow_up.send_at) == (2, friday + timedelta(days=3))  # Monday noon


async def test_a_recipient_marked_replied_gets_no_later_step(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """Marking a row replied cancels its built follow-up (reason replied) and builds none after it;
    the others continue. Progress and results.csv say so."""
    user, account, campaign_id = await _sequence(
        world, [_step(SECOND, 1), _step(THIRD, 1)], ["Ada", "Bob", "Cy"]
    )
    await _send_due(world, dispatcher, account, clock)
    stop = await world.client.post(
        f"/v1/campaigns/{campaign_id}/rows/1/stop", json={"reason": "replied"}, headers=world.auth(user)
    )
    assert stop.status_code == 200, stop.text
    assert (stop.json()["stop_reason"], stop.json()["cancelled"]) == ("replied", 0)
    assert await builder.build_due(clock.now()) == 2  # Bob and Cy
    stopped = await world.client.post(
        f"/v1/campaigns/{campaign_id}/rows/2/stop", json={"reason": "stopped"}, headers=world.auth(user)
    )
    assert (stopped.json()["stop_reason"], stopped.json()["cancelled"]) == ("stopped", 1)
    again = await world.client.post(
        f"/v1/campaigns/{campaign_id}/rows/2/stop", json={"reason": "replied"}, headers=world.auth(user)
    )
    assert (again.json()["stop_reason"], again.json()["cancelled"]) == ("stopped", 0)  # the first stands
    clock.advance(hours=1, seconds=1)
    [second] = await _send_due(world, dispatcher, account, clock)
    assert second.to == ["cy@example.com"]
    assert await builder.build_due(clock.now()) == 1
    progress = (
        await world.client.get(f"/v1/campaigns/{campaign_id}/progress", headers=world.auth(user))
    ).json()
    assert progress["stopped"] == {"replied": 1, "stopped": 1}
    assert progress["steps"] == {"1": {"sent": 3}, "2": {"cancelled": 1, "sent": 1}, "3": {"scheduled": 1}}
    assert progress["counts"]["cancelled"] == 1
    response = await world.client.get(f"/v1/campaigns/{campaign_id}/results.csv", headers=world.auth(user))
    lines = [
        (row["row"], row["step"], row["state"], row["reason"], row["stop_reason"])
        for row in csv.DictReader(io.StringIO(response.text))
    ]
    assert lines == [
        ("1", "1", "sent", "", "replied"),
        ("2", "1", "sent", "", "stopped"),
        ("2", "2", "cancelled", "stopped", "stopped"),
        ("3", "1", "sent", "", ""),
        ("3", "2", "sent", "", ""),
        ("3", "3", "scheduled", "", ""),
    ]
    missing = await world.client.post(
        f"/v1/campaigns/{campaign_id}/rows/9/stop", json={"reason": "replied"}, headers=world.auth(user)
    )
    assert missing.status_code == 404
    wrong = await world.client.post(
        f"/v1/campaigns/{campaign_id}/rows/1/stop", json={"reason": "bounced"}, headers=world.auth(user)
    )
    assert wrong.status_code in (400, 422)


async def test_a_suppressed_recipient_gets_no_follow_up(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """A built follow-up to an address suppressed since is cancelled at dispatch, and the recipient's
    sequence stops for good (suppressed; unsubscribed for an unsubscribe): no later step is built."""
    rows = ["Ada", "Bob", "Uma"]
    user, account, campaign_id = await _sequence(world, [_step(SECOND, 1), _step(THIRD, 1)], rows)
    await _send_due(world, dispatcher, account, clock)
    assert await builder.build_due(clock.now()) == 3
    added = await world.client.post(
        "/v1/suppressions", json={"address": "ada@example.com"}, headers=world.auth(user)
    )
    assert added.status_code in (200, 201), added.text
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        entry = suppression.address_entry("uma@example.com")
        await suppression.add(
            session, user, entry, reason=suppression.Reason.UNSUBSCRIBE, source="test", now=clock.now()
        )
    clock.advance(hours=1, seconds=1)
    [second] = await _send_due(world, dispatcher, account, clock)
    assert second.to == ["bob@example.com"]
    assert await builder.build_due(clock.now()) == 1  # Bob's step 3 only
    found = await _messages(world, campaign_id)
    assert [(row.row_number, row.step, row.state, row.outcome_reason) for row in found] == [
        (1, 1, "sent", None),
        (1, 2, "cancelled", "suppressed"),
        (2, 1, "sent", None),
        (2, 2, "sent", None),
        (2, 3, "scheduled", None),
        (3, 1, "sent", None),
        (3, 2, "cancelled", "suppressed"),
    ]
    progress = (
        await world.client.get(f"/v1/campaigns/{campaign_id}/progress", headers=world.auth(user))
    ).json()
    assert progress["stopped"] == {"suppressed": 1, "unsubscribed": 1}


async def test_a_stop_from_the_watcher_and_an_auto_reply_delay(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """``stop_recipient`` (bounced) cancels the built follow-up; ``delay_recipient`` (an auto-reply)
    postpones the next one by its step's delay, from now."""
    _, account, campaign_id = await _sequence(world, [_step(SECOND, 5)], ["Ada", "Bob"])
    [ada, bob] = await _send_due(world, dispatcher, account, clock)
    await builder.build_due(clock.now())
    assert world.infra.sessions is not None
    later = clock.now() + timedelta(hours=2)
    async with transaction(world.infra.sessions) as session:
        ada_id = await stops.recipient_of_message(session, ada.message_id)
        bob_id = await stops.recipient_of_message(session, bob.message_id)
        assert ada_id is not None
        assert bob_id is not None
        assert await stops.stop_recipient(session, ada_id, StopReason.BOUNCED, clock.now()) is not None
        assert await stops.delay_recipient(session, bob_id, later) == 1
    rows = await _messages(world, campaign_id)
    assert [(row.row_number, row.step, row.state, row.outcome_reason) for row in rows] == [
        (1, 1, "sent", None),
        (1, 2, "cancelled", "bounced"),
        (2, 1, "sent", None),
        (2, 2, "scheduled", None),
    ]
    assert rows[3].send_at == later + timedelta(hours=5)


async def test_editing_later_steps_changes_only_unbuilt_messages(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """A started step cannot change (409); a later one can, and a built email keeps its content."""
    user, account, campaign_id = await _sequence(world, [_step(SECOND, 1), _step(THIRD, 1)], ["Ada"])
    await _send_due(world, dispatcher, account, clock)
    await builder.build_due(clock.now())
    url = f"/v1/campaigns/{campaign_id}/steps"
    changed = await world.client.put(
        url, json={"steps": [_step(OTHER, 1), _step(THIRD, 1)]}, headers=world.auth(user)
    )
    assert changed.status_code == 409, changed.text
    missing = await world.client.put(
        url, json={"steps": [_step(SECOND, 1), {**_step(99, 1)}]}, headers=world.auth(user)
    )
    assert missing.status_code == 422, missing.text
    edited = await world.client.put(
        url,
        json={"steps": [_step(SECOND, 1), _step(OTHER, 2, same_thread=False), _step(THIRD, 3)]},
        headers=world.auth(user),
    )
    assert edited.status_code == 200, edited.text
    assert [(s["step"], s["template_id"], s["delay_hours"]) for s in edited.json()["steps"]] == [
        (2, SECOND, 1),
        (3, OTHER, 2),
        (4, THIRD, 3),
    ]
    assert (await _campaign(world, user, campaign_id))["steps"] == edited.json()["steps"]
    clock.advance(hours=1, seconds=1)
    [second] = await _send_due(world, dispatcher, account, clock)
    assert second.html == "<p>Again, Ada</p>"  # built before the edit, unchanged
    await builder.build_due(clock.now())
    clock.advance(hours=2, seconds=1)
    [third] = await _send_due(world, dispatcher, account, clock)
    assert (third.subject, third.in_reply_to) == ("Other Ada", None)


async def test_steps_are_checked_at_creation(world: World) -> None:
    """A step naming a template version that does not exist, a delay under an hour, or more than
    five follow-ups are refused."""
    user, account = await world.user_with_account()
    world.fake.add_template(user, FIRST, subject="Hi", html="<p>Hi</p>")
    base = {"name": "S", "account_id": account, "template_id": FIRST, "template_version": 1}
    for steps in ([_step(99, 1)], [_step(FIRST, 0)], [_step(FIRST, 1)] * 6):
        response = await world.client.post(
            "/v1/campaigns", json={**base, "steps": steps}, headers=world.auth(user)
        )
        assert response.status_code in (400, 422), (steps, response.text)
    ok = await world.client.post(
        "/v1/campaigns", json={**base, "steps": [_step(FIRST, 1)]}, headers=world.auth(user)
    )
    assert ok.status_code == 201
    assert ok.json()["steps"] == [
        {
            "step": 2,
            "template_id": FIRST,
            "template_version": 1,
            "delay_hours": 1,
            "business_days": False,
            "same_thread": True,
        }
    ]
    listed = (await world.client.get("/v1/campaigns", headers=world.auth(user))).json()
    assert listed[0]["steps"] == ok.json()["steps"]


async def test_two_builders_build_each_follow_up_once(
    world: World,
    dispatcher: Dispatcher,
    builder: FollowUpBuilder,
    clock: FakeClock,
    settings: QueueSettings,
    fake: FakeServices,
) -> None:
    """Two builders running at once build every recipient's next step exactly once."""
    names = [f"R{i}" for i in range(30)]
    _, account, campaign_id = await _sequence(world, [_step(SECOND, 1)], names)
    await _send_due(world, dispatcher, account, clock)
    assert world.infra.sessions is not None
    async with open_follow_ups(settings, world.infra.sessions, transport=fake.transport()) as other:
        builder.batch_size = other.batch_size = 7
        built = await asyncio.gather(builder.build_due(clock.now()), other.build_due(clock.now()))
        assert sum(built) == 30
        assert await other.build_due(clock.now()) == 0
    rows = await _messages(world, campaign_id)
    assert sorted(row.row_number for row in rows if row.step == 2) == list(range(1, 31))


async def test_a_follow_up_that_does_not_render_fails_saying_why(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """A row missing a field the follow-up's template uses becomes a failed message naming it,
    which retry-failed leaves alone (it has no content)."""
    user, account, campaign_id = await _sequence(world, [_step(SECOND, 1)], ["Ada"])
    world.fake.add_template(user, SECOND, subject="Hi {{nickname}}", html="<p>x</p>")
    await _send_due(world, dispatcher, account, clock)
    assert await builder.build_due(clock.now()) == 1
    follow_up = (await _messages(world, campaign_id))[1]
    assert (follow_up.state, follow_up.outcome_reason, follow_up.outcome_detail) == (
        "failed",
        "missing_fields",
        "missing: nickname",
    )
    retried = await world.client.post(f"/v1/campaigns/{campaign_id}/retry-failed", headers=world.auth(user))
    assert retried.json() == {"retried": 0}  # nothing to send: it was never rendered


async def test_the_campaign_completes_only_after_its_last_step(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """With every first email sent, the campaign is still running while a follow-up is owed or
    scheduled; it completes once the last step is sent."""
    user, account, campaign_id = await _sequence(world, [_step(SECOND, 1)], ["Ada"])
    await _send_due(world, dispatcher, account, clock)

    async def state() -> str:
        return str((await _campaign(world, user, campaign_id))["state"])

    # Not built yet (no builder in this housekeeping), yet owed: not complete.
    dispatcher.follow_ups = None
    await dispatcher.housekeeping()
    assert await state() == "running"
    dispatcher.follow_ups = builder
    await dispatcher.housekeeping()  # builds step 2, which is scheduled
    assert await state() == "running"
    clock.advance(hours=1, seconds=1)
    await _send_due(world, dispatcher, account, clock)
    await dispatcher.housekeeping()
    assert await state() == "completed"
