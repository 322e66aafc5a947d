"""A campaign's progress over HTTP: the current send rate, and an ETA that says what the rest waits for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_queue.models import campaigns
from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from tests.queue.world import FakeClock, World


async def _launched(world: World, rows: int, **schedule: Any) -> tuple[int, int, int]:
    user, account = await world.user_with_account()
    world.fake.add_template(user, 5, subject="Hi {{name}}", html="<p>Dear {{name}}</p>")
    body = {
        "name": "Run",
        "account_id": account,
        "template_id": 5,
        "template_version": 1,
        "schedule": schedule,
    }
    campaign = (await world.client.post("/v1/campaigns", json=body, headers=world.auth(user))).json()
    listing = "email,name\n" + "".join(f"r{i}@example.com,R{i}\n" for i in range(rows))
    await world.client.put(
        f"/v1/campaigns/{campaign['id']}/recipients",
        content=listing.encode(),
        headers={**world.auth(user), "content-type": "text/csv"},
    )
    launched = await world.client.post(
        f"/v1/campaigns/{campaign['id']}/launch", json={}, headers=world.auth(user)
    )
    assert launched.status_code == 200, launched.text
    return user, account, campaign["id"]


async def _progress(world: World, user: int, campaign_id: int) -> dict[str, Any]:
    response = await world.client.get(f"/v1/campaigns/{campaign_id}/progress", headers=world.auth(user))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_the_rate_is_read_since_the_run_began(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """30 emails sent in the 13 s since launch read about 138 a minute, not 3.0 (a ten-minute average)."""
    user, account, campaign_id = await _launched(world, 30)
    began = datetime.now(UTC) - timedelta(seconds=13)
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        await session.execute(
            update(campaigns).where(campaigns.c.id == campaign_id).values(launched_at=began)
        )
    dispatched = 0
    for _ in range(30):
        dispatched += await dispatcher.dispatch_due_messages()
        clock.advance(seconds=1)
    assert dispatched == 30
    envelopes = [
        await world.publish(
            c.EmailSent(
                message_id=command.message_id,
                account_id=account,
                gmail_id=f"g{command.message_id}",
                thread_id="t",
                rfc_message_id=command.rfc_message_id,
                sent_at=began + timedelta(seconds=0.4 * (i + 1)),
            )
        )
        for i, command in enumerate(await world.commands())
    ]
    await world.consumed(*envelopes)
    rate = (await _progress(world, user, campaign_id))["sent_per_minute"]
    assert 100 < rate <= 30 / 13 * 60


async def test_the_eta_says_the_rest_waits_for_tomorrow_under_the_daily_cap(
    world: World, dispatcher: Dispatcher
) -> None:
    """With today's cap used up, the ETA is past local midnight and says it waits for the cap to reset."""
    user, _, campaign_id = await _launched(world, 5, daily_cap=2)
    assert await dispatcher.dispatch_due_messages() == 2
    progress = await _progress(world, user, campaign_id)
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    assert (progress["held_by"], datetime.fromisoformat(progress["held_until"])) == ("daily_cap", midnight)
    assert progress["eta_seconds"] >= (midnight - datetime.now(UTC)).total_seconds() - 1  # rounded
    assert "nothing goes until" in progress["eta_detail"]
    assert "daily cap" in progress["eta_detail"]


async def test_the_eta_waits_for_the_sending_window(world: World) -> None:
    """Launched outside its window, a campaign's ETA starts when the window opens, and says so."""
    opens = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    closes = opens + timedelta(hours=1)
    user, _, campaign_id = await _launched(
        world, 3, window_start=opens.strftime("%H:%M"), window_end=closes.strftime("%H:%M")
    )
    progress = await _progress(world, user, campaign_id)
    assert (progress["held_by"], datetime.fromisoformat(progress["held_until"])) == ("window", opens)
    assert progress["eta_seconds"] >= (opens - datetime.now(UTC)).total_seconds() - 1  # rounded
    assert "sending window" in progress["eta_detail"]


async def test_a_paused_campaign_has_no_eta(world: World) -> None:
    """A paused campaign's ETA is unknown until it is resumed, and the progress says so."""
    user, _, campaign_id = await _launched(world, 3)
    await world.client.post(f"/v1/campaigns/{campaign_id}/pause", headers=world.auth(user))
    progress = await _progress(world, user, campaign_id)
    assert (progress["eta_seconds"], progress["held_by"]) == (None, "paused")
    assert "resume" in progress["eta_detail"]
