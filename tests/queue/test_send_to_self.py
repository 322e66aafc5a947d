""" "Send a test of row N to myself": the row as it will go, to the campaign's own Gmail address."""

from __future__ import annotations

from typing import Any

from mailmerger_queue.dispatch.dispatcher import Dispatcher
from tests.queue.world import World

LIST = "email,name,files\r\nada@example.com,Ada,\r\ngrace@example.com,Grace,{file}\r\nnot-an-address,Bob,\r\n"


async def _draft(world: World) -> tuple[int, str, dict[str, Any], int]:
    """A draft campaign with its list uploaded: (user, account address, campaign, row 2's attachment)."""
    user, account = await world.user_with_account()
    address = (await world.sender_row(account)).email
    shared, own = world.new_id(), world.new_id()
    world.fake.add_attachment(user, shared)
    world.fake.add_attachment(user, own)
    world.fake.add_template(user, 5, subject="Hi {{name}}", html="<p>Dear {{name}}</p>")
    body = {
        "name": "Launch",
        "account_id": account,
        "template_id": 5,
        "template_version": 1,
        "attachment_ids": [shared],
        "attachments_column": "files",
    }
    campaign = (await world.client.post("/v1/campaigns", json=body, headers=world.auth(user))).json()
    await world.client.put(
        f"/v1/campaigns/{campaign['id']}/recipients",
        content=LIST.format(file=own).encode(),
        headers={**world.auth(user), "content-type": "text/csv"},
    )
    return user, address, campaign, own


async def test_a_test_of_a_row_goes_to_the_campaigns_own_address(
    world: World, dispatcher: Dispatcher
) -> None:
    """Row 2, rendered with its attachments and the campaign's, is sent now to the sender's own address."""
    user, address, campaign, own = await _draft(world)
    response = await world.client.post(
        f"/v1/campaigns/{campaign['id']}/rows/2/test", headers=world.auth(user)
    )
    assert response.status_code == 201, response.text
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert (command.to, command.subject, command.html) == ([address], "[Test] Hi Grace", "<p>Dear Grace</p>")
    assert [a.attachment_id for a in command.attachments] == [*campaign["attachment_ids"], own]


async def test_a_test_is_marked_and_not_counted_in_the_campaign(world: World) -> None:
    """The test is an email of its own, recorded as a test of that row; the campaign counts only its rows."""
    user, address, campaign, _ = await _draft(world)
    test = (
        await world.client.post(f"/v1/campaigns/{campaign['id']}/rows/1/test", headers=world.auth(user))
    ).json()
    assert (test["campaign_id"], test["to"]) == (None, [address])
    assert test["transitions"][0]["reason"].startswith(f"a test of campaign {campaign['id']}, row 1")
    await world.client.post(
        f"/v1/campaigns/{campaign['id']}/launch", json={"skip_invalid": True}, headers=world.auth(user)
    )
    progress = (
        await world.client.get(f"/v1/campaigns/{campaign['id']}/progress", headers=world.auth(user))
    ).json()
    assert (progress["total"], progress["counts"]["scheduled"]) == (2, 2)


async def test_a_row_with_a_problem_cannot_be_tested(world: World) -> None:
    """A row the campaign would not send (an invalid address) is refused with its problem named."""
    user, _, campaign, _ = await _draft(world)
    response = await world.client.post(
        f"/v1/campaigns/{campaign['id']}/rows/3/test", headers=world.auth(user)
    )
    assert (response.status_code, "invalid_address" in response.json()["detail"]) == (409, True)


async def test_a_row_that_does_not_exist_is_404(world: World) -> None:
    """Testing a row past the end of the list is 404, and nothing is written."""
    user, _, campaign, _ = await _draft(world)
    response = await world.client.post(
        f"/v1/campaigns/{campaign['id']}/rows/9/test", headers=world.auth(user)
    )
    assert response.status_code == 404
    emails = (await world.client.get("/v1/emails", headers=world.auth(user))).json()
    assert emails["items"] == []
