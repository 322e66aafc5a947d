"""The dispatcher: never early, paced per account, fair between users, safe against races."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_queue.dispatch.fairness import Candidate, fair_pick
from mailmerger_queue.dispatch.wakeup import DueListener
from mailmerger_queue.settings import QueueSettings
from mailmerger_queue.worker import open_dispatcher, run_dispatcher
from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from mailmerger_shared.runtime import Infrastructure
from tests.queue.world import FakeClock, World
from tests.support import eventually


async def test_nothing_is_sent_before_its_send_at(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """An email due in 10 s is not published until the clock reaches its send_at."""
    user, account = await world.user_with_account()
    email = await world.compose(user, account, send_at=(clock.now() + timedelta(seconds=10)).isoformat())
    clock.advance(seconds=9.9)
    assert await dispatcher.dispatch_due_messages() == 0
    clock.advance(seconds=0.1)
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert command.message_id == email["id"]


async def test_dispatch_publishes_the_message_and_records_the_attempt(
    world: World, dispatcher: Dispatcher
) -> None:
    """SendEmail carries the account, content and Message-ID; the ledger says dispatched, attempt 1."""
    user, account = await world.user_with_account(email="grace@gmail.com")
    email = await world.compose(user, account, to=["ada@example.com"], bcc=["boss@example.com"], text="plain")
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert (command.account_id, command.user_id, command.from_address) == (account, user, "grace@gmail.com")
    assert (command.to, command.bcc, command.subject, command.text) == (
        ["ada@example.com"],
        ["boss@example.com"],
        "Hi",
        "plain",
    )
    assert command.rfc_message_id == email["rfc_message_id"]
    assert command.attempt == 1
    stored = await world.email(user, email["id"])
    assert stored["state"] == "dispatched"
    assert [a["attempt"] for a in stored["attempts"]] == [1]
    assert stored["transitions"][-1]["to_state"] == "dispatched"


async def test_cancel_racing_dispatch_has_exactly_one_winner(world: World, dispatcher: Dispatcher) -> None:
    """For every email, either the cancel wins (never published) or the dispatch wins (cancel is 409)."""
    user, account = await world.user_with_account()
    ids = [(await world.compose(user, account))["id"] for _ in range(20)]

    async def cancel(email_id: int) -> int:
        response = await world.client.post(f"/v1/emails/{email_id}/cancel", headers=world.auth(user))
        return response.status_code

    results = await asyncio.gather(dispatcher.dispatch_due_messages(), *(cancel(i) for i in ids))
    statuses = dict(zip(ids, results[1:], strict=True))
    published = Counter(command.message_id for command in await world.commands())
    for email_id in ids:
        state = (await world.email(user, email_id))["state"]
        if statuses[email_id] == 200:
            assert (state, published[email_id]) == ("cancelled", 0)
        else:
            assert statuses[email_id] == 409
            assert (state, published[email_id]) == ("dispatched", 1)


async def test_per_minute_limit_paces_an_account(
    world: World, dispatcher: Dispatcher, clock: FakeClock, settings: QueueSettings
) -> None:
    """With 3/min, due emails go one at a time, a third of a minute (over the pace fraction) apart."""
    user, account = await world.user_with_account()
    response = await world.client.patch(
        f"/v1/senders/{account}", json={"per_minute_limit": 3}, headers=world.auth(user)
    )
    assert response.status_code == 200
    for _ in range(5):
        await world.compose(user, account)
    interval = 20 / settings.dispatch.pace_fraction
    assert await dispatcher.dispatch_due_messages() == 1
    clock.advance(seconds=interval - 0.5)
    assert await dispatcher.dispatch_due_messages() == 0
    clock.advance(seconds=0.5)
    assert await dispatcher.dispatch_due_messages() == 1
    clock.advance(seconds=2 * interval)
    assert await dispatcher.dispatch_due_messages() == 1  # an idle stretch gives no burst later
    assert await dispatcher.dispatch_due_messages() == 0


async def test_per_minute_limit_cannot_exceed_gmails_quota(world: World, settings: QueueSettings) -> None:
    """Above MM_DISPATCH_PER_MINUTE_LIMIT (Gmail's per-user quota) is refused, naming the ceiling; at
    it is accepted. Above it the sender's guard would only defer the excess again and again."""
    user, account = await world.user_with_account()
    ceiling = settings.dispatch.per_minute_limit
    too_fast = await world.client.patch(
        f"/v1/senders/{account}", json={"per_minute_limit": ceiling + 1}, headers=world.auth(user)
    )
    assert too_fast.status_code == 422, too_fast.text
    assert f"per_minute_limit: at most {ceiling}" in too_fast.json()["detail"]
    at_quota = await world.client.patch(
        f"/v1/senders/{account}", json={"per_minute_limit": ceiling}, headers=world.auth(user)
    )
    assert at_quota.status_code == 200, at_quota.text
    assert at_quota.json()["per_minute_limit"] == ceiling


async def test_daily_limit_is_a_rolling_24_hours(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """With 2/day, the third email waits until the first dispatch is 24 h old."""
    user, account = await world.user_with_account()
    await world.client.patch(f"/v1/senders/{account}", json={"daily_limit": 2}, headers=world.auth(user))
    for _ in range(3):
        await world.compose(user, account)
    assert await dispatcher.dispatch_due_messages() == 2
    clock.advance(hours=23, minutes=59)
    assert await dispatcher.dispatch_due_messages() == 0
    clock.advance(minutes=2)
    assert await dispatcher.dispatch_due_messages() == 1


async def test_throttled_account_is_parked_until_the_time_given(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """After SenderThrottled(until), the account sends nothing before ``until``; others are unaffected."""
    user, account = await world.user_with_account()
    other_user, other_account = await world.user_with_account()
    await world.publish(
        c.SenderThrottled(account_id=account, until=clock.now() + timedelta(hours=1), reason="Mail sending")
    )

    async def parked() -> bool:
        row = await world.sender_row(account)
        return row.parked_until is not None

    await eventually(parked)
    await world.compose(user, account)
    await world.compose(other_user, other_account)
    assert await dispatcher.dispatch_due_messages() == 1
    assert [command.account_id for command in await world.commands()] == [other_account]
    listed = (await world.client.get("/v1/senders", headers=world.auth(user))).json()
    assert listed[0]["parked_reason"] == "Mail sending"
    clock.advance(hours=1, seconds=1)
    assert await dispatcher.dispatch_due_messages() == 1


@pytest.mark.parametrize("event", ["disconnected", "reconnect_required"])
async def test_accounts_not_connected_send_nothing(world: World, dispatcher: Dispatcher, event: str) -> None:
    """A disconnected or reconnect-required account keeps its emails scheduled, unsent."""
    user, account = await world.user_with_account()
    email = await world.compose(user, account)
    if event == "disconnected":
        await world.publish(c.GmailDisconnected(user_id=user, account_id=account))
    else:
        await world.publish(
            c.GmailReconnectRequired(user_id=user, account_id=account, reason="invalid_grant")
        )

    async def changed() -> bool:
        return (await world.sender_row(account)).state == event

    await eventually(changed)
    assert await dispatcher.dispatch_due_messages() == 0
    assert (await world.email(user, email["id"]))["state"] == "scheduled"


async def test_a_busy_user_does_not_delay_another_users_email(
    world: World, dispatcher: Dispatcher, settings: QueueSettings
) -> None:
    """A backlog beyond one tick on user A's account does not keep user B's email out of the first tick."""
    busy, busy_account = await world.user_with_account()
    for _ in range(20):
        await world.compose(busy, busy_account)
    quiet, quiet_account = await world.user_with_account()
    single = await world.compose(quiet, quiet_account)
    assert await dispatcher.dispatch_due_messages() < 21  # one tick's worth of the busy account
    assert single["id"] in {command.message_id for command in await world.commands()}


async def test_replicas_never_dispatch_a_message_twice(
    world: World, infra: Infrastructure, settings: QueueSettings, clock: FakeClock
) -> None:
    """Three dispatchers ticking at once publish every message exactly once."""
    accounts = [await world.user_with_account() for _ in range(4)]
    ids = [(await world.compose(user, account))["id"] for user, account in accounts for _ in range(30)]
    replicas = [await open_dispatcher(infra, settings, clock) for _ in range(3)]
    published: Counter[int] = Counter()
    for _ in range(20):
        await asyncio.gather(*(replica.dispatch_due_messages() for replica in replicas))
        published.update(command.message_id for command in await world.commands())
        if len(published) == len(ids):
            break
        clock.advance(seconds=61)
    assert set(published) == set(ids)
    assert set(published.values()) == {1}


async def test_run_dispatcher_sends_as_messages_fall_due(world: World, settings: QueueSettings) -> None:
    """The worker loop, on the real clock, publishes an email shortly after its send_at."""
    user, account = await world.user_with_account()
    task = asyncio.create_task(run_dispatcher(settings))
    try:
        email = await world.compose(user, account)
        commands: list[c.SendEmail] = []

        async def published() -> bool:
            commands.extend(await world.commands())
            return bool(commands)

        await eventually(published)
        assert [command.message_id for command in commands] == [email["id"]]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _ticks() -> float:
    """Dispatcher ticks this process has finished (ok or failed)."""
    return sum(
        REGISTRY.get_sample_value("mailmerger_dispatcher_ticks_total", {"result": r}) or 0.0
        for r in ("ok", "failed")
    )


async def test_an_email_sent_now_wakes_the_dispatcher_before_its_tick(
    world: World, infra: Infrastructure, settings: QueueSettings
) -> None:
    """Composing commits a NOTIFY: with a 60 s tick, the email is still published within seconds."""
    slow = msgspec.structs.replace(
        settings, dispatch=msgspec.structs.replace(settings.dispatch, tick_seconds=60)
    )
    user, account = await world.user_with_account()
    ticks_before = _ticks()
    task = asyncio.create_task(run_dispatcher(slow))
    try:

        async def listening() -> bool:
            assert infra.sessions is not None
            async with transaction(infra.sessions) as session:
                count = await session.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                    {"name": "queue-dispatcher-listener"},
                )
            return bool(count)

        await eventually(listening)
        # The first tick, then the one that follows connecting the listener, are over: only a
        # notification can wake the dispatcher now.
        await eventually(lambda: _ticks() >= ticks_before + 2)
        assert await world.commands() == []
        email = await world.compose(user, account)
        commands: list[c.SendEmail] = []

        async def published() -> bool:
            commands.extend(await world.commands())
            return bool(commands)

        await eventually(published, timeout=5)
        assert [command.message_id for command in commands] == [email["id"]]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_listener_falls_back_to_polling_when_it_cannot_listen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No database to listen on: a pause still lasts its seconds, nothing is raised, and the next
    attempt to listen waits RETRY_SECONDS instead of coming every tick."""
    attempts = 0
    connect = asyncpg.connect

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal attempts
        attempts += 1
        return await connect(*args, **kwargs)

    monkeypatch.setattr(asyncpg, "connect", counted)
    listener = DueListener("postgresql+asyncpg://127.0.0.1:1/nowhere", application_name="test")
    started = asyncio.get_running_loop().time()
    await listener.wait(0.2)
    assert asyncio.get_running_loop().time() - started >= 0.2
    for _ in range(3):
        await listener.wait(0.01)
    assert attempts == 1
    await listener.close()


def test_fair_pick_interleaves_streams_and_accounts() -> None:
    """Pure: each account's streams alternate; every account's first pick precedes any second."""

    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    candidates = [Candidate(i, 1, 10, t0 + timedelta(seconds=i)) for i in range(1, 6)]
    candidates += [
        Candidate(100, 1, None, t0 + timedelta(minutes=5)),
        Candidate(200, 2, None, t0 + timedelta(hours=1)),
    ]
    random.shuffle(candidates)
    candidates.sort(key=lambda cand: (cand.account_id, cand.campaign_id or 0, cand.send_at))
    picked = [cand.id for cand in fair_pick(candidates, {1: 3, 2: 5}, batch_size=10)]
    assert picked == [1, 200, 100, 2]
    assert [cand.id for cand in fair_pick(candidates, {1: 3, 2: 5}, batch_size=2)] == [1, 200]


async def test_a_message_whose_outcome_never_came_is_dispatched_again(
    world: World, dispatcher: Dispatcher, clock: FakeClock, settings: QueueSettings
) -> None:
    """Still dispatched after redispatch_after_seconds: the same command (attempt, Message-ID) goes
    again, once per wait, with a transition saying so; a message with its outcome is left alone."""
    user, account = await world.user_with_account()
    stuck, answered = (await world.compose(user, account), await world.compose(user, account))
    assert await dispatcher.dispatch_due_messages() == 2
    first = {command.message_id: command for command in await world.commands()}
    await world.publish(
        c.EmailSent(
            message_id=answered["id"],
            account_id=account,
            gmail_id="g",
            thread_id="t",
            rfc_message_id=answered["rfc_message_id"],
            sent_at=clock.now(),
        )
    )
    await world.wait_state(user, answered["id"], "sent")
    wait = settings.dispatch.redispatch_after_seconds
    clock.advance(seconds=wait - 1)
    await dispatcher.housekeeping()
    assert await world.commands() == []
    clock.advance(seconds=2)
    await dispatcher.housekeeping()
    [again] = await world.commands()
    assert again == first[stuck["id"]]  # the same command: attempt 1, the same Message-ID
    await dispatcher.housekeeping()
    assert await world.commands() == []  # the wait starts over
    history = (await world.email(user, stuck["id"]))["transitions"]
    assert [t["to_state"] for t in history] == ["scheduled", "dispatched", "dispatched"]
    assert "dispatched again" in history[-1]["reason"]


# --- pacing per Google account ----------------------------------------------------------------


async def _shared_gmail(world: World, **limits: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Two users who each connected the same Gmail account (Google spells it either way)."""
    first = await world.user_with_account(email="shared.inbox@gmail.com")
    second = await world.user_with_account(email="Shared.Inbox@gmail.com")
    for user, account in (first, second):
        answer = await world.client.patch(f"/v1/senders/{account}", json=limits, headers=world.auth(user))
        assert answer.status_code == 200, answer.text
    return first, second


async def test_one_google_account_connected_by_two_users_is_paced_once(
    world: World, dispatcher: Dispatcher, clock: FakeClock, settings: QueueSettings
) -> None:
    """Gmail's quota is per Google user: at 3/min the two connections together get one send per
    interval, not one each."""
    (user_a, account_a), (user_b, account_b) = await _shared_gmail(world, per_minute_limit=3)
    for _ in range(2):
        await world.compose(user_a, account_a)
        await world.compose(user_b, account_b)
    assert await dispatcher.dispatch_due_messages() == 1
    assert await dispatcher.dispatch_due_messages() == 0
    clock.advance(seconds=20 / settings.dispatch.pace_fraction)
    assert await dispatcher.dispatch_due_messages() == 1
    senders = {command.account_id for command in await world.commands()}
    assert senders == {account_a, account_b}  # the connections still take turns


async def test_the_daily_cap_counts_every_connection_of_the_google_account(
    world: World, dispatcher: Dispatcher
) -> None:
    """What one connection sent today counts against the other's rolling 24 hours."""
    (user_a, account_a), (user_b, account_b) = await _shared_gmail(world, daily_limit=2)
    await world.compose(user_a, account_a)
    await world.compose(user_a, account_a)
    assert await dispatcher.dispatch_due_messages() == 2
    await world.compose(user_b, account_b)
    assert await dispatcher.dispatch_due_messages() == 0


async def test_throttling_one_connection_parks_the_whole_google_account(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """SenderThrottled for one connection parks every connection of that Gmail account."""
    (_, account_a), (user_b, account_b) = await _shared_gmail(world)
    until = clock.now() + timedelta(seconds=30)
    await world.consumed(
        await world.publish(c.SenderThrottled(account_id=account_a, until=until, reason="rateLimitExceeded"))
    )
    assert (await world.sender_row(account_b)).parked_until == until
    await world.compose(user_b, account_b)
    assert await dispatcher.dispatch_due_messages() == 0
    clock.advance(seconds=31)
    assert await dispatcher.dispatch_due_messages() == 1
