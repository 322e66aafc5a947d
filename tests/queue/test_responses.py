"""What the mailbox watcher found, applied: replies stop, auto-replies delay, bounces stop and suppress."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_queue.models import (
    messages,
    recipients,
    responses,
    suppressions,
    transitions,
    webhook_deliveries,
    webhook_endpoints,
)
from mailmerger_queue.sequences.builder import FollowUpBuilder
from mailmerger_queue.sequences.domain import follow_up_at
from mailmerger_queue.sequences.responses import apply_message_id_read, apply_response
from mailmerger_queue.settings import DispatchSettings
from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from mailmerger_shared.settings import Deployment, SettingsError, load_all
from tests.queue.test_sequences import FIRST, SECOND, THIRD, _send_due, _step
from tests.queue.world import FakeClock, World
from tests.support import eventually

METADATA = "https://www.googleapis.com/auth/gmail.metadata"
SEND = "https://www.googleapis.com/auth/gmail.send"
DISPATCH = DispatchSettings()
_gmail_ids = iter(range(1, 1_000_000))


async def _watched_account(world: World, user: int, scopes: list[str] | None = None) -> int:
    """A connected account of ``user`` that granted ``scopes`` (send and metadata by default)."""
    account = world.new_id()
    await world.publish(
        c.GmailConnected(
            user_id=user,
            account_id=account,
            email=f"user{user}.{account}@acme.example",
            scopes=scopes or [SEND, METADATA],
        )
    )

    async def known() -> bool:
        row = await world.sender_row(account)
        return row is not None

    await eventually(known)
    return account


async def _campaign(
    world: World, addresses: list[str], steps: list[dict[str, Any]], **options: Any
) -> tuple[int, int, int]:
    """A launched campaign from a watched account to ``addresses``: (user, account, campaign)."""
    user = world.new_id()
    account = await _watched_account(world, user)
    world.fake.add_template(user, FIRST, subject="Hi {{name}}", html="<p>Dear {{name}}</p>")
    world.fake.add_template(user, SECOND, subject="Again {{name}}", html="<p>Again</p>")
    world.fake.add_template(user, THIRD, subject="Last {{name}}", html="<p>Last</p>")
    body = {"name": "R", "account_id": account, "template_id": FIRST, "template_version": 1, "steps": steps}
    listed = "email,name\n" + "".join(f"{a},{a.split('@')[0]}\n" for a in addresses)
    campaign_id = await world.launch_campaign(user, {**body, **options}, listed)
    return user, account, campaign_id


def _response(command: c.SendEmail, account: int, kind: str, **fields: Any) -> c.ResponseReceived:
    values: dict[str, Any] = {
        "message_id": command.message_id,
        "account_id": account,
        "kind": kind,
        "gmail_id": f"in{next(_gmail_ids)}",
        "from_address": command.to[0],
        "received_at": datetime.now(UTC),
        "detail": f"a {kind}",
    }
    return c.ResponseReceived(**(values | fields))


async def _apply(
    world: World,
    event: c.ResponseReceived,
    settings: DispatchSettings = DISPATCH,
    *,
    now: datetime | None = None,
) -> bool:
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        return await apply_response(session, event, now or datetime.now(UTC), settings)


async def _hook(world: World, user: int) -> None:
    """An endpoint of ``user`` subscribed to every response event (the courier does not run here)."""
    assert world.infra.sessions is not None
    now = datetime.now(UTC)
    async with transaction(world.infra.sessions) as session:
        await session.execute(
            insert(webhook_endpoints).values(
                user_id=user,
                url="https://hooks.example/in",
                events=["message.replied", "message.bounced", "message.auto_replied"],
                secret_sealed=b"sealed",
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )


async def _rows(world: World, campaign_id: int) -> list[Any]:
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        found = await session.execute(
            select(messages, recipients.c.row_number, recipients.c.stop_reason)
            .join(recipients, recipients.c.id == messages.c.recipient_id)
            .where(messages.c.campaign_id == campaign_id)
            .order_by(recipients.c.row_number, messages.c.step)
        )
        return list(found)


async def _count(world: World, table: Any, *where: Any) -> int:
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def _deliveries(world: World) -> list[Any]:
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        return list(await session.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id)))


async def test_a_reply_through_the_broker_stops_the_sequence_and_is_announced(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """A reply published to queue.mailbox-events is recorded, stops the replier's sequence (its
    built follow-up cancelled, reason replied) and stages message.replied with kind/from/received_at."""
    user, account, campaign_id = await _campaign(world, ["ada@acme.example"], [_step(SECOND, 1)])
    await _hook(world, user)
    [first] = await _send_due(world, dispatcher, account, clock)
    assert await builder.build_due(clock.now()) == 1
    received = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    await world.publish(_response(first, account, "reply", received_at=received))

    async def applied() -> bool:
        return await _count(world, responses, responses.c.message_id == first.message_id) == 1

    await eventually(applied)
    rows = await _rows(world, campaign_id)
    assert [(row.step, row.state, row.outcome_reason, row.stop_reason) for row in rows] == [
        (1, "sent", None, "replied"),
        (2, "cancelled", "replied", "replied"),
    ]
    assert (rows[0].state, rows[0].response, rows[0].responded_at) == ("sent", "reply", received)
    assert "ada@acme.example replied" in rows[1].outcome_detail
    [delivery] = await _deliveries(world)
    data = delivery.payload["data"]
    assert (delivery.event_type, data["message_id"], data["state"]) == (
        "message.replied",
        first.message_id,
        "sent",
    )
    assert (data["kind"], data["from"], data["received_at"]) == (
        "reply",
        "ada@acme.example",
        "2026-12-07T10:00:00Z",
    )


async def test_the_same_response_twice_is_applied_once(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """The same Gmail message reported twice (a redelivery, a resync): one row, one stop, one webhook."""
    user, account, campaign_id = await _campaign(world, ["ada@acme.example"], [_step(SECOND, 1)])
    await _hook(world, user)
    [first] = await _send_due(world, dispatcher, account, clock)
    await builder.build_due(clock.now())
    event = _response(first, account, "bounce")
    assert await _apply(world, event) is True
    assert await _apply(world, event) is False
    assert await _count(world, responses) == 1
    follow_up = (await _rows(world, campaign_id))[1]
    cancelled = transitions.c.message_id == follow_up.id, transitions.c.to_state == "cancelled"
    assert await _count(world, transitions, *cancelled) == 1
    assert [d.event_type for d in await _deliveries(world)] == ["message.bounced"]
    assert await _count(world, suppressions) == 1


async def test_a_weaker_response_does_not_overwrite_a_stronger_one(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """The message keeps its strongest response (bounce > reply > auto_reply > delay), with its time;
    each one is still recorded."""
    _, account, campaign_id = await _campaign(world, ["ada@acme.example", "bob@acme.example"], [])
    [ada, bob] = await _send_due(world, dispatcher, account, clock)
    t0 = datetime(2026, 12, 7, 9, tzinfo=UTC)
    await _apply(world, _response(ada, account, "delay", received_at=t0))
    await _apply(world, _response(ada, account, "auto_reply", received_at=t0 + timedelta(hours=1)))
    await _apply(world, _response(bob, account, "bounce", received_at=t0))
    await _apply(world, _response(bob, account, "reply", received_at=t0 + timedelta(hours=1)))
    await _apply(world, _response(bob, account, "auto_reply", received_at=t0 + timedelta(hours=2)))
    rows = await _rows(world, campaign_id)
    assert [(row.response, row.responded_at) for row in rows] == [
        ("auto_reply", t0 + timedelta(hours=1)),
        ("bounce", t0),
    ]
    assert await _count(world, responses) == 5
    assert [row.stop_reason for row in rows] == [None, "bounced"]  # a reply after a bounce: first stop stands


async def test_an_auto_reply_delays_the_next_step_and_a_soft_bounce_only_records(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """An auto-reply moves the built follow-up to its delay from now and stops nothing; a soft
    bounce (delay) changes nothing but the record; neither stops the sequence."""
    user, account, campaign_id = await _campaign(
        world, ["ada@acme.example", "bob@acme.example"], [_step(SECOND, 5)]
    )
    await _hook(world, user)
    [ada, bob] = await _send_due(world, dispatcher, account, clock)
    await builder.build_due(clock.now())
    before = await _rows(world, campaign_id)
    later = clock.now() + timedelta(hours=1)
    await _apply(world, _response(ada, account, "auto_reply"), now=later)
    await _apply(world, _response(bob, account, "delay", from_address="mailer-daemon@googlemail.com"))
    rows = await _rows(world, campaign_id)
    assert [(row.step, row.state, row.response, row.stop_reason) for row in rows] == [
        (1, "sent", "auto_reply", None),
        (2, "scheduled", None, None),
        (1, "sent", "delay", None),
        (2, "scheduled", None, None),
    ]
    assert rows[1].send_at == later + timedelta(hours=5)
    assert rows[3].send_at == before[3].send_at
    assert [d.event_type for d in await _deliveries(world)] == ["message.auto_replied"]


async def test_an_auto_reply_before_the_follow_up_is_built_still_delays_it(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """The out-of-office answer may arrive before the builder's pass: the follow-up it builds is
    then due its delay after the answer, not after the first email."""
    _, account, campaign_id = await _campaign(world, ["ada@acme.example"], [_step(SECOND, 5)])
    [ada] = await _send_due(world, dispatcher, account, clock)
    answered = clock.now() + timedelta(hours=2)
    await _apply(world, _response(ada, account, "auto_reply", received_at=answered), now=answered)
    assert await builder.build_due(clock.now()) == 1
    rows = await _rows(world, campaign_id)
    assert rows[1].send_at == answered + timedelta(hours=5)


async def test_a_domain_reply_stops_colleagues_but_not_consumer_domains(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """With stop_on_domain_reply, a reply stops every recipient at the replier's domain (reason
    replied, naming who replied); a reply from gmail.com stops only its own recipient."""
    addresses = ["ada@acme.example", "bob@acme.example", "cy@other.example", "x@gmail.com", "y@gmail.com"]
    user, account, campaign_id = await _campaign(world, addresses, [], stop_on_domain_reply=True)
    campaign = (await world.client.get(f"/v1/campaigns/{campaign_id}", headers=world.auth(user))).json()
    assert (campaign["stop_on_reply"], campaign["stop_on_domain_reply"]) == (True, True)
    sent = await _send_due(world, dispatcher, account, clock)
    by_address = {command.to[0]: command for command in sent}
    await _apply(world, _response(by_address["ada@acme.example"], account, "reply"))
    await _apply(world, _response(by_address["x@gmail.com"], account, "reply"))
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        stopped = (
            await session.execute(
                select(recipients.c.address, recipients.c.stop_reason)
                .where(recipients.c.campaign_id == campaign_id)
                .order_by(recipients.c.row_number)
            )
        ).all()
    assert [tuple(row) for row in stopped] == [
        ("ada@acme.example", "replied"),
        ("bob@acme.example", "replied"),
        ("cy@other.example", None),
        ("x@gmail.com", "replied"),
        ("y@gmail.com", None),
    ]


async def test_without_stop_on_reply_a_reply_is_recorded_only(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """A campaign created with stop_on_reply false keeps sending its sequence to a replier."""
    _, account, campaign_id = await _campaign(
        world, ["ada@acme.example"], [_step(SECOND, 1)], stop_on_reply=False
    )
    [first] = await _send_due(world, dispatcher, account, clock)
    await builder.build_due(clock.now())
    await _apply(world, _response(first, account, "reply"))
    rows = await _rows(world, campaign_id)
    assert [(row.response, row.state, row.stop_reason) for row in rows] == [
        ("reply", "sent", None),
        (None, "scheduled", None),
    ]


async def test_a_bounce_suppresses_the_address_for_later_campaigns(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """A hard bounce stops the sequence (bounced) and suppresses the failed address (hard_bounce,
    source bounce); another campaign of the user to that address is held back at dispatch."""
    user, account, campaign_id = await _campaign(world, ["ada@acme.example"], [])
    [first] = await _send_due(world, dispatcher, account, clock)
    bounce = _response(
        first,
        account,
        "bounce",
        from_address="mailer-daemon@googlemail.com",
        failed_recipient="Ada@Acme.example",
    )
    await _apply(world, bounce)
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        entries = (await session.execute(select(suppressions))).all()
    assert [(e.user_id, e.kind, e.value, e.reason, e.source) for e in entries] == [
        (user, "address", "ada@acme.example", "hard_bounce", "bounce")
    ]
    assert (await _rows(world, campaign_id))[0].stop_reason == "bounced"
    body = {"name": "Again", "account_id": account, "template_id": FIRST, "template_version": 1}
    again = await world.launch_campaign(
        user, body, "email,name\nada@acme.example,Ada\nbob@acme.example,Bob\n"
    )
    [sent] = await _send_due(world, dispatcher, account, clock)
    assert sent.to == ["bob@acme.example"]
    held = (await _rows(world, again))[0]
    assert (held.state, held.outcome_reason, held.stop_reason) == ("cancelled", "suppressed", "bounced")


async def test_a_stored_message_id_rethreads_built_follow_ups(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """MessageIdRead records what Gmail stored; a follow-up built but not dispatched is rewritten to
    answer it (In-Reply-To, References), later ones are built on it, and a sent one never changes."""
    _, account, campaign_id = await _campaign(
        world, ["ada@acme.example"], [_step(SECOND, 1), _step(THIRD, 1)]
    )
    [first] = await _send_due(world, dispatcher, account, clock)
    await builder.build_due(clock.now())
    assert world.infra.sessions is not None
    stored = "<CAgmail-stored-1@mail.gmail.com>"
    await world.publish(
        c.MessageIdRead(message_id=first.message_id, account_id=account, rfc_message_id=stored)
    )

    async def rewritten() -> bool:
        return (await _rows(world, campaign_id))[1].in_reply_to == stored

    await eventually(rewritten)
    rows = await _rows(world, campaign_id)
    assert (rows[0].stored_message_id, rows[0].rfc_message_id) == (stored, first.rfc_message_id)
    assert rows[1].reference_ids == [stored]
    clock.advance(hours=1, seconds=1)
    [second] = await _send_due(world, dispatcher, account, clock)
    assert (second.in_reply_to, second.references) == (stored, [stored])
    await builder.build_due(clock.now())
    third = (await _rows(world, campaign_id))[2]
    assert (third.in_reply_to, third.reference_ids) == (
        second.rfc_message_id,
        [stored, second.rfc_message_id],
    )
    # Read again (another value): the sent follow-up keeps its headers, the scheduled one follows.
    again = "<CAgmail-stored-2@mail.gmail.com>"
    async with transaction(world.infra.sessions) as session:
        event = c.MessageIdRead(message_id=first.message_id, account_id=account, rfc_message_id=again)
        assert await apply_message_id_read(session, event, datetime.now(UTC)) == 1
    rows = await _rows(world, campaign_id)
    assert (rows[1].state, rows[1].in_reply_to, rows[1].reference_ids) == ("sent", stored, [stored])
    assert rows[2].reference_ids == [again, second.rfc_message_id]


async def test_an_unknown_message_is_skipped(world: World, dispatcher: Dispatcher, clock: FakeClock) -> None:
    """A response to a message the queue does not have, or to another account's, changes nothing."""
    _, account, _ = await _campaign(world, ["ada@acme.example"], [])
    [first] = await _send_due(world, dispatcher, account, clock)
    assert await _apply(world, _response(first, account, "reply", message_id=10**12)) is False
    assert await _apply(world, _response(first, account + 1, "reply")) is False
    assert await _count(world, responses) == 0


async def test_replies_watched_follows_the_senders_scopes(world: World) -> None:
    """A campaign (read and progress) says replies are not watched for a send-only account, and why."""
    user = world.new_id()
    world.fake.add_template(user, FIRST, subject="Hi", html="<p>Hi</p>")
    send_only = await _watched_account(world, user, [SEND])
    watched = await _watched_account(world, user, [SEND, METADATA])
    ids = []
    for account in (send_only, watched):
        body = {"name": "W", "account_id": account, "template_id": FIRST, "template_version": 1}
        created = await world.client.post("/v1/campaigns", json=body, headers=world.auth(user))
        assert created.status_code == 201, created.text
        assert (created.json()["stop_on_reply"], created.json()["stop_on_domain_reply"]) == (True, False)
        ids.append(created.json()["id"])
    for campaign_id, watched_now in zip(ids, (False, True), strict=True):
        read = (await world.client.get(f"/v1/campaigns/{campaign_id}", headers=world.auth(user))).json()
        progress = (
            await world.client.get(f"/v1/campaigns/{campaign_id}/progress", headers=world.auth(user))
        ).json()
        for answer in (read, progress):
            assert answer["replies_watched"] is watched_now
            if watched_now:
                assert answer["replies_watched_detail"] is None
            else:
                assert "only gmail.send" in answer["replies_watched_detail"]
                assert (
                    f"POST /v1/campaigns/{campaign_id}/rows/{{row}}/stop" in answer["replies_watched_detail"]
                )
    listed = (await world.client.get("/v1/campaigns", headers=world.auth(user))).json()
    assert sorted(item["replies_watched"] for item in listed) == [False, True]


async def test_progress_report_and_results_count_responses(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """Progress and the report count recipients who replied, bounced, auto-replied; results.csv
    appends each email's response and when it came."""
    addresses = ["ada@a.example", "bob@b.example", "cy@c.example", "di@d.example"]
    user, account, campaign_id = await _campaign(world, addresses, [])
    sent = await _send_due(world, dispatcher, account, clock)
    at = datetime(2026, 12, 7, 11, 30, tzinfo=UTC)
    await _apply(world, _response(sent[0], account, "reply", received_at=at))
    await _apply(world, _response(sent[0], account, "reply"))  # another reply of the same recipient
    await _apply(world, _response(sent[1], account, "bounce", received_at=at))
    await _apply(world, _response(sent[2], account, "auto_reply", received_at=at))
    headers = world.auth(user)
    progress = (await world.client.get(f"/v1/campaigns/{campaign_id}/progress", headers=headers)).json()
    assert (progress["replied"], progress["bounced"], progress["auto_replied"]) == (1, 1, 1)
    assert progress["stopped"] == {"replied": 1, "bounced": 1}
    report = (await world.client.get(f"/v1/campaigns/{campaign_id}/report", headers=headers)).json()
    assert (report["replied"], report["bounced"], report["auto_replied"]) == (1, 1, 1)
    response = await world.client.get(f"/v1/campaigns/{campaign_id}/results.csv", headers=headers)
    header = response.text.splitlines()[0].split(",")
    assert header[-3:] == ["stop_reason", "response", "responded_at"]
    lines = [
        (row["address"], row["response"], row["responded_at"])
        for row in csv.DictReader(io.StringIO(response.text))
    ]
    assert lines == [
        ("ada@a.example", "reply", at.isoformat()),
        ("bob@b.example", "bounce", at.isoformat()),
        ("cy@c.example", "auto_reply", at.isoformat()),
        ("di@d.example", "", ""),
    ]


async def test_the_time_scale_shortens_follow_up_delays(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """With one hour lasting 60 s, a 2-hour step is due 2 minutes after the previous one was sent,
    and an auto-reply delays it 2 minutes from now."""
    builder.hour_seconds = 60
    _, account, campaign_id = await _campaign(world, ["ada@acme.example"], [_step(SECOND, 2)])
    sent_at = clock.now()
    [first] = await _send_due(world, dispatcher, account, clock, sent_at=sent_at)
    await builder.build_due(clock.now())
    assert (await _rows(world, campaign_id))[1].send_at == sent_at + timedelta(minutes=2)
    fast = DispatchSettings(follow_up_hour_seconds=60)
    later = clock.now() + timedelta(minutes=10)
    await _apply(world, _response(first, account, "auto_reply"), fast, now=later)
    assert (await _rows(world, campaign_id))[1].send_at == later + timedelta(minutes=2)


def test_the_time_scale_applies_to_hours_not_to_business_days() -> None:
    """Scaled, a 24-hour business-day delay from Friday noon is 24 minutes of Monday-to-Friday time:
    Friday 12:24; from Saturday it still waits for Monday (calendar days are not scaled)."""
    weekdays = [1, 2, 3, 4, 5]
    friday, saturday = datetime(2026, 12, 4, 12, tzinfo=UTC), datetime(2026, 12, 5, 12, tzinfo=UTC)
    assert follow_up_at(
        friday, 24, business_days=True, timezone="UTC", weekdays=weekdays, hour_seconds=60
    ) == (friday + timedelta(minutes=24))
    assert follow_up_at(
        saturday, 24, business_days=True, timezone="UTC", weekdays=weekdays, hour_seconds=60
    ) == (datetime(2026, 12, 7, 0, 24, tzinfo=UTC))
    assert follow_up_at(
        friday, 3, business_days=False, timezone="UTC", weekdays=weekdays
    ) == friday + timedelta(hours=3)


def test_a_compressed_hour_is_refused_in_production() -> None:
    """MM_DISPATCH_FOLLOW_UP_HOUR_SECONDS other than 3600 loads in development, never in production."""
    env = {"MM_DISPATCH_FOLLOW_UP_HOUR_SECONDS": "60"}
    _, dispatch = load_all(Deployment, DispatchSettings, env=env)
    assert dispatch.follow_up_hour_seconds == 60
    with pytest.raises(SettingsError, match="MM_DISPATCH_FOLLOW_UP_HOUR_SECONDS"):
        load_all(Deployment, DispatchSettings, env={**env, "MM_ENVIRONMENT": "production"})
    _, default = load_all(Deployment, DispatchSettings, env={"MM_ENVIRONMENT": "production"})
    assert default.follow_up_hour_seconds == 3600
