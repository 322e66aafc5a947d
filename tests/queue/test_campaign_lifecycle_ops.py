"""Deleting an unsent email; editing a draft campaign; deleting and cloning campaigns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_queue.models import (
    attempts,
    campaign_steps,
    campaigns,
    domain_sends,
    messages,
    recipients,
    transitions,
)
from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from tests.queue.world import World

LATER = (datetime.now(UTC) + timedelta(days=3)).isoformat()
STEP = {"template_id": 6, "template_version": 1, "delay_hours": 48}


def _rows(count: int) -> str:
    return "email,name\n" + "".join(f"r{i}@example.com,R{i}\n" for i in range(count))


async def _sql(world: World, statement: Any) -> Any:
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        return await session.execute(statement)


async def _count(world: World, table: Any, condition: Any) -> int:
    result = await _sql(world, select(func.count()).select_from(table).where(condition))
    return int(result.scalar_one())


async def _draft(world: World, user: int, account: int, **fields: Any) -> dict[str, Any]:
    world.fake.add_template(user, 5, subject="Hi {{name}}", html="<p>Dear {{name}}</p>")
    world.fake.add_template(user, 6, subject="Again {{name}}", html="<p>Again {{name}}</p>")
    body = {"name": "Launch", "account_id": account, "template_id": 5, "template_version": 1, **fields}
    response = await world.client.post("/v1/campaigns", json=body, headers=world.auth(user))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _launch(world: World, user: int, campaign_id: int) -> None:
    response = await world.client.post(
        f"/v1/campaigns/{campaign_id}/launch", json={}, headers=world.auth(user)
    )
    assert response.status_code == 200, response.text


async def _answer_all(world: World, dispatcher: Dispatcher, account: int, *, fail: bool = False) -> None:
    """Dispatch what is due and answer every command sent (or failed)."""
    assert await dispatcher.dispatch_due_messages() > 0
    envelopes = []
    for command in await world.commands():
        event: c.Message = (
            c.EmailFailed(message_id=command.message_id, account_id=account, reason="badRequest", detail="no")
            if fail
            else c.EmailSent(
                message_id=command.message_id,
                account_id=account,
                gmail_id=f"g{command.message_id}",
                thread_id="t",
                rfc_message_id=command.rfc_message_id,
                sent_at=datetime.now(UTC),
            )
        )
        envelopes.append(await world.publish(event))
    await world.consumed(*envelopes)


# --- DELETE /v1/emails/{id} --------------------------------------------------------------------


async def test_a_scheduled_email_is_deleted_with_its_history(world: World) -> None:
    """A scheduled email is deleted (204) with its transitions; reading it then is a 404."""
    user, account = await world.user_with_account()
    email = await world.compose(user, account, send_at=LATER)
    response = await world.client.delete(f"/v1/emails/{email['id']}", headers=world.auth(user))
    assert response.status_code == 204, response.text
    assert (await world.client.get(f"/v1/emails/{email['id']}", headers=world.auth(user))).status_code == 404
    assert await _count(world, transitions, transitions.c.message_id == email["id"]) == 0


async def test_a_cancelled_or_failed_email_is_deleted(world: World, dispatcher: Dispatcher) -> None:
    """A cancelled email and a failed one (whose attempt sent nothing) are deleted with their attempts."""
    user, account = await world.user_with_account()
    cancelled = await world.compose(user, account, send_at=LATER)
    await world.client.post(f"/v1/emails/{cancelled['id']}/cancel", headers=world.auth(user))
    failed = await world.compose(user, account)
    await _answer_all(world, dispatcher, account, fail=True)
    await world.wait_state(user, failed["id"], "failed")
    for email in (cancelled, failed):
        response = await world.client.delete(f"/v1/emails/{email['id']}", headers=world.auth(user))
        assert response.status_code == 204, response.text
    assert await _count(world, attempts, attempts.c.message_id == failed["id"]) == 0


async def test_an_email_in_flight_unconfirmed_or_sent_is_not_deleted(
    world: World, dispatcher: Dispatcher
) -> None:
    """Dispatched, unconfirmed and sent emails are refused (409), each saying what to do instead."""
    user, account = await world.user_with_account()
    email = await world.compose(user, account)
    assert await dispatcher.dispatch_due_messages() == 1
    url = f"/v1/emails/{email['id']}"
    refused = await world.client.delete(url, headers=world.auth(user))
    assert (refused.status_code, "being sent" in refused.json()["detail"]) == (409, True)
    await _sql(world, update(messages).where(messages.c.id == email["id"]).values(state="unconfirmed"))
    refused = await world.client.delete(url, headers=world.auth(user))
    assert (refused.status_code, "resolve" in refused.json()["detail"]) == (409, True)
    await _sql(world, update(messages).where(messages.c.id == email["id"]).values(state="sent"))
    refused = await world.client.delete(url, headers=world.auth(user))
    assert (refused.status_code, "was sent" in refused.json()["detail"]) == (409, True)


async def test_a_dismissed_email_that_may_have_been_sent_waits_a_day(
    world: World, dispatcher: Dispatcher
) -> None:
    """A cancelled email whose attempt may have sent it is kept while Gmail's daily limit counts it."""
    user, account = await world.user_with_account()
    email = await world.compose(user, account)
    assert await dispatcher.dispatch_due_messages() == 1
    await _sql(world, update(messages).where(messages.c.id == email["id"]).values(state="cancelled"))
    url = f"/v1/emails/{email['id']}"
    refused = await world.client.delete(url, headers=world.auth(user))
    assert (refused.status_code, "24 hours" in refused.json()["detail"]) == (409, True)
    day_ago = datetime.now(UTC) - timedelta(days=1, minutes=1)
    await _sql(
        world, update(attempts).where(attempts.c.message_id == email["id"]).values(dispatched_at=day_ago)
    )
    assert (await world.client.delete(url, headers=world.auth(user))).status_code == 204


async def test_a_campaign_email_or_another_users_is_not_deleted(world: World) -> None:
    """A campaign's email is refused (cancel it or stop the row); another user's is a 404."""
    user, account = await world.user_with_account()
    campaign = await _draft(world, user, account, schedule={"start_at": LATER})
    await world.upload_recipients(user, campaign["id"], _rows(1))
    await _launch(world, user, campaign["id"])
    page = await world.client.get(f"/v1/emails?campaign_id={campaign['id']}", headers=world.auth(user))
    [email] = page.json()["items"]
    refused = await world.client.delete(f"/v1/emails/{email['id']}", headers=world.auth(user))
    assert refused.status_code == 409
    assert "stop the row" in refused.json()["detail"]
    mine = await world.compose(user, account, send_at=LATER)
    stranger = world.new_id()
    assert (
        await world.client.delete(f"/v1/emails/{mine['id']}", headers=world.auth(stranger))
    ).status_code == 404


# --- PATCH /v1/campaigns/{id} ------------------------------------------------------------------


async def test_a_draft_is_edited(world: World) -> None:
    """Name, schedule and reply stops of a draft change; what is left out keeps its value."""
    user, account = await world.user_with_account()
    campaign = await _draft(world, user, account)
    schedule = {
        "timezone": "Europe/Paris",
        "window_start": "09:00",
        "window_end": "17:00",
        "weekdays": [1, 2, 3],
        "daily_cap": 50,
        "spacing_seconds": 60,
        "jitter_seconds": 10,
    }
    response = await world.client.patch(
        f"/v1/campaigns/{campaign['id']}",
        json={"name": "Renamed", "schedule": schedule, "stop_on_domain_reply": True},
        headers=world.auth(user),
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert (edited["name"], edited["stop_on_domain_reply"], edited["list_unsubscribe"]) == (
        "Renamed",
        True,
        True,
    )
    assert (edited["schedule"]["timezone"], edited["schedule"]["daily_cap"]) == ("Europe/Paris", 50)
    got = await world.client.get(f"/v1/campaigns/{campaign['id']}", headers=world.auth(user))
    assert got.json()["schedule"]["weekdays"] == [1, 2, 3]


async def test_a_drafts_steps_and_list_are_replaced(world: World) -> None:
    """A draft's follow-ups (PUT …/steps) and list (PUT …/recipients) are replaced whole."""
    user, account = await world.user_with_account()
    campaign = await _draft(world, user, account)
    url = f"/v1/campaigns/{campaign['id']}"
    response = await world.client.put(f"{url}/steps", json={"steps": [STEP, STEP]}, headers=world.auth(user))
    assert (response.status_code, [s["step"] for s in response.json()["steps"]]) == (200, [2, 3])
    response = await world.client.put(f"{url}/steps", json={"steps": [STEP]}, headers=world.auth(user))
    assert [s["step"] for s in response.json()["steps"]] == [2]
    await world.upload_recipients(user, campaign["id"], _rows(3))
    await world.upload_recipients(user, campaign["id"], _rows(1))
    report = await world.client.get(f"{url}/report", headers=world.auth(user))
    assert report.json()["summary"]["rows"] == 1


async def test_a_drafts_attachments_column_changes_while_it_has_no_list(world: World) -> None:
    """A draft without a list takes a new attachments column, and can drop it again (null)."""
    user, account = await world.user_with_account()
    campaign = await _draft(world, user, account)
    url = f"/v1/campaigns/{campaign['id']}"
    response = await world.client.patch(url, json={"attachments_column": "files"}, headers=world.auth(user))
    assert (response.status_code, response.json()["attachments_column"]) == (200, "files")
    response = await world.client.patch(url, json={"attachments_column": None}, headers=world.auth(user))
    assert (response.status_code, response.json()["attachments_column"]) == (200, None)


async def test_a_draft_edit_is_checked(world: World) -> None:
    """An empty edit, an unknown field and a bad schedule are refused; another user's draft is a 404."""
    user, account = await world.user_with_account()
    campaign = await _draft(world, user, account)
    url = f"/v1/campaigns/{campaign['id']}"
    assert (await world.client.patch(url, json={}, headers=world.auth(user))).status_code == 422
    assert (await world.client.patch(url, json={"colour": "red"}, headers=world.auth(user))).status_code in (
        400,
        422,
    )
    bad = await world.client.patch(
        url, json={"schedule": {"window_start": "09:00"}}, headers=world.auth(user)
    )
    assert (bad.status_code, "window_end" in bad.json()["detail"]) == (422, True)
    zone = await world.client.patch(
        url, json={"schedule": {"timezone": "Mars/Base"}}, headers=world.auth(user)
    )
    assert zone.status_code == 422
    stranger = world.new_id()
    assert (
        await world.client.patch(url, json={"name": "x"}, headers=world.auth(stranger))
    ).status_code == 404


async def test_a_setting_the_list_was_built_with_needs_the_list_emptied(world: World) -> None:
    """Turning unsubscribe links off with a list uploaded is a 409 saying to empty the list first."""
    user, account = await world.user_with_account()
    campaign = await _draft(world, user, account)
    await world.upload_recipients(user, campaign["id"], _rows(2))
    url = f"/v1/campaigns/{campaign['id']}"
    refused = await world.client.patch(url, json={"list_unsubscribe": False}, headers=world.auth(user))
    assert (refused.status_code, "empty the list" in refused.json()["detail"]) == (409, True)
    emptied = await world.client.put(f"{url}/recipients", json={"rows": []}, headers=world.auth(user))
    assert emptied.status_code == 200, emptied.text
    response = await world.client.patch(url, json={"list_unsubscribe": False}, headers=world.auth(user))
    assert (response.status_code, response.json()["list_unsubscribe"]) == (200, False)


async def test_a_launched_campaign_is_not_edited(world: World) -> None:
    """Once launched, an edit is a 409 naming the state and pointing at PUT …/steps."""
    user, account = await world.user_with_account()
    campaign = await _draft(world, user, account, schedule={"start_at": LATER})
    await world.upload_recipients(user, campaign["id"], _rows(1))
    await _launch(world, user, campaign["id"])
    refused = await world.client.patch(
        f"/v1/campaigns/{campaign['id']}", json={"name": "Late"}, headers=world.auth(user)
    )
    assert refused.status_code == 409
    assert "running" in refused.json()["detail"]
    assert "/steps" in refused.json()["detail"]


# --- DELETE /v1/campaigns/{id} -----------------------------------------------------------------


async def test_a_draft_is_deleted_with_its_list_and_steps(world: World) -> None:
    """A draft goes with its rows and steps (204); reading it then is a 404, another user's a 404."""
    user, account = await world.user_with_account()
    campaign = await _draft(world, user, account, steps=[STEP])
    await world.upload_recipients(user, campaign["id"], _rows(3))
    url = f"/v1/campaigns/{campaign['id']}"
    assert (await world.client.delete(url, headers=world.auth(world.new_id()))).status_code == 404
    assert (await world.client.delete(url, headers=world.auth(user))).status_code == 204
    assert (await world.client.get(url, headers=world.auth(user))).status_code == 404
    assert await _count(world, recipients, recipients.c.campaign_id == campaign["id"]) == 0
    assert await _count(world, campaign_steps, campaign_steps.c.campaign_id == campaign["id"]) == 0


async def test_a_running_or_paused_campaign_is_cancelled_first(world: World) -> None:
    """Deleting a running or paused campaign is a 409 saying to cancel it first; cancelled, it goes."""
    user, account = await world.user_with_account()
    campaign = await _draft(world, user, account, schedule={"start_at": LATER})
    await world.upload_recipients(user, campaign["id"], _rows(2))
    await _launch(world, user, campaign["id"])
    url = f"/v1/campaigns/{campaign['id']}"
    refused = await world.client.delete(url, headers=world.auth(user))
    assert (refused.status_code, "cancel it first" in refused.json()["detail"]) == (409, True)
    await world.client.post(f"{url}/pause", headers=world.auth(user))
    assert (await world.client.delete(url, headers=world.auth(user))).status_code == 409
    await world.client.post(f"{url}/cancel", headers=world.auth(user))
    assert (await world.client.delete(url, headers=world.auth(user))).status_code == 204
    assert await _count(world, messages, messages.c.campaign_id == campaign["id"]) == 0


async def test_a_completed_campaign_that_sent_is_deleted_with_no_rows_left(
    world: World, dispatcher: Dispatcher
) -> None:
    """A completed campaign is kept while its unsubscribe links must work (30 days), then deleted
    leaving no message, attempt, transition, row, step or domain counter behind."""
    user, account = await world.user_with_account()
    campaign = await _draft(world, user, account, steps=[STEP], schedule={"domain_daily_cap": 100})
    await world.upload_recipients(user, campaign["id"], _rows(3))
    await _launch(world, user, campaign["id"])
    await _answer_all(world, dispatcher, account)
    await world.client.post(f"/v1/campaigns/{campaign['id']}/cancel", headers=world.auth(user))
    ids = list(
        (await _sql(world, select(messages.c.id).where(messages.c.campaign_id == campaign["id"]))).scalars()
    )
    assert len(ids) == 3
    url = f"/v1/campaigns/{campaign['id']}"
    refused = await world.client.delete(url, headers=world.auth(user))
    assert (refused.status_code, "30 days" in refused.json()["detail"]) == (409, True)
    month_ago = datetime.now(UTC) - timedelta(days=31)
    await _sql(
        world,
        update(attempts).where(attempts.c.campaign_id == campaign["id"]).values(dispatched_at=month_ago),
    )
    assert (await world.client.delete(url, headers=world.auth(user))).status_code == 204
    left = {
        "campaigns": await _count(world, campaigns, campaigns.c.id == campaign["id"]),
        "messages": await _count(world, messages, messages.c.id.in_(ids)),
        "attempts": await _count(world, attempts, attempts.c.message_id.in_(ids)),
        "transitions": await _count(world, transitions, transitions.c.message_id.in_(ids)),
        "recipients": await _count(world, recipients, recipients.c.campaign_id == campaign["id"]),
        "steps": await _count(world, campaign_steps, campaign_steps.c.campaign_id == campaign["id"]),
        "domain_sends": await _count(world, domain_sends, domain_sends.c.campaign_id == campaign["id"]),
    }
    assert left == dict.fromkeys(left, 0)


# --- POST /v1/campaigns/{id}/clone -------------------------------------------------------------


async def test_a_clone_is_a_draft_with_the_same_settings_and_steps(world: World) -> None:
    """The copy is a draft named "<name> (copy)" with the same schedule and steps and no list; it launches."""
    user, account = await world.user_with_account()
    source = await _draft(
        world,
        user,
        account,
        steps=[STEP],
        list_unsubscribe=False,
        schedule={"daily_cap": 7, "start_at": LATER},
    )
    await world.upload_recipients(user, source["id"], _rows(2))
    await _launch(world, user, source["id"])
    response = await world.client.post(f"/v1/campaigns/{source['id']}/clone", headers=world.auth(user))
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["id"] != source["id"]
    assert (copy["name"], copy["state"], copy["launched_at"]) == ("Launch (copy)", "draft", None)
    assert (copy["schedule"], copy["steps"], copy["list_unsubscribe"]) == (
        source["schedule"],
        source["steps"],
        False,
    )
    report = await world.client.get(f"/v1/campaigns/{copy['id']}/report", headers=world.auth(user))
    assert report.json()["summary"]["rows"] == 0
    await world.upload_recipients(user, copy["id"], _rows(4))
    await _launch(world, user, copy["id"])
    assert await _count(world, messages, messages.c.campaign_id == copy["id"]) == 4


async def test_a_clone_with_recipients_is_built_again_and_launches(world: World) -> None:
    """With ``recipients: true`` the copy's list is the same rows, rendered for the copy; it launches."""
    user, account = await world.user_with_account()
    source = await _draft(world, user, account, schedule={"start_at": LATER})
    await world.upload_recipients(user, source["id"], _rows(3) + "not-an-address,Bad\n")
    launched = await world.client.post(
        f"/v1/campaigns/{source['id']}/launch", json={"skip_invalid": True}, headers=world.auth(user)
    )
    assert launched.status_code == 200, launched.text
    await world.client.post(f"/v1/campaigns/{source['id']}/cancel", headers=world.auth(user))
    response = await world.client.post(
        f"/v1/campaigns/{source['id']}/clone",
        json={"name": "Again", "recipients": True},
        headers=world.auth(user),
    )
    assert response.status_code == 201, response.text
    copy = response.json()
    assert (copy["name"], copy["state"]) == ("Again", "draft")
    report = (await world.client.get(f"/v1/campaigns/{copy['id']}/report", headers=world.auth(user))).json()
    assert (report["summary"]["rows"], report["summary"]["valid"]) == (4, 3)
    preview = (await world.client.get(f"/v1/campaigns/{copy['id']}/rows/1", headers=world.auth(user))).json()
    assert (preview["address"], preview["subject"]) == ("r0@example.com", "Hi R0")
    launched = await world.client.post(
        f"/v1/campaigns/{copy['id']}/launch", json={"skip_invalid": True}, headers=world.auth(user)
    )
    assert launched.status_code == 200, launched.text
    assert await _count(world, messages, messages.c.campaign_id == copy["id"]) == 3
    stranger = world.new_id()
    assert (
        await world.client.post(f"/v1/campaigns/{source['id']}/clone", headers=world.auth(stranger))
    ).status_code == 404
