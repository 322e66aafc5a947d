"""Per-row Cc, Bcc and Reply-To columns: checked like To, counted against Gmail's recipient limit,
carried by every message of the row (follow-ups included) and by one-off emails."""

from __future__ import annotations

from typing import Any

from mailmerger_queue.campaigns.build import address_cell
from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_queue.sequences.builder import FollowUpBuilder
from mailmerger_shared import contracts as c
from tests.queue.world import FakeClock, World

FIRST, SECOND = 5, 6
COLUMNS = {"cc_column": "cc", "bcc_column": "bcc", "reply_to_column": "reply to"}


async def _campaign(world: World, user: int, account: int, **fields: Any) -> dict[str, Any]:
    world.fake.add_template(user, FIRST, subject="Hi {{name}}", html="<p>Dear {{name}}</p>")
    world.fake.add_template(user, SECOND, subject="Again {{name}}", html="<p>Again, {{name}}</p>")
    body = {"name": "Cc", "account_id": account, "template_id": FIRST, "template_version": 1, **fields}
    response = await world.client.post("/v1/campaigns", json=body, headers=world.auth(user))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _problems(world: World, user: int, campaign_id: int) -> list[tuple[int, str, str]]:
    report = (await world.client.get(f"/v1/campaigns/{campaign_id}/report", headers=world.auth(user))).json()
    return [(p["row"], p["problem"], p["detail"]) for p in report["problems"]]


async def test_the_campaigns_columns_give_each_message_its_cc_bcc_and_reply_to(
    world: World, dispatcher: Dispatcher
) -> None:
    """Cells with several addresses (commas or semicolons) are normalized and reach the command;
    the campaign read names the columns; an empty cell means none."""
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account, **COLUMNS)
    assert {k: campaign[k] for k in COLUMNS} == COLUMNS
    listed = (
        "email,name,cc,bcc,reply to\r\n"
        'ada@example.com,Ada,"boss@Example.COM; pa@example.com",audit@example.com,sales@example.com\r\n'
        "bob@example.com,Bob,,,\r\n"
    )
    assert await world.upload_recipients(user, campaign["id"], listed) == {
        "rows": 2,
        "valid": 2,
        "problems": {},
    }
    preview = (
        await world.client.get(f"/v1/campaigns/{campaign['id']}/rows/1", headers=world.auth(user))
    ).json()
    assert (preview["cc"], preview["bcc"], preview["reply_to"]) == (
        ["boss@example.com", "pa@example.com"],
        ["audit@example.com"],
        ["sales@example.com"],
    )
    launched = await world.client.post(
        f"/v1/campaigns/{campaign['id']}/launch", json={}, headers=world.auth(user)
    )
    assert launched.status_code == 200, launched.text
    assert await dispatcher.dispatch_due_messages() == 2
    ada, bob = sorted(await world.commands(), key=lambda command: command.to[0])
    assert (ada.to, ada.cc, ada.bcc, ada.reply_to) == (
        ["ada@example.com"],
        ["boss@example.com", "pa@example.com"],
        ["audit@example.com"],
        ["sales@example.com"],
    )
    assert (bob.to, bob.cc, bob.bcc, bob.reply_to) == (["bob@example.com"], [], [], [])
    email = await world.email(user, ada.message_id)
    assert (email["cc"], email["bcc"], email["reply_to"]) == (ada.cc, ada.bcc, ada.reply_to)


async def test_an_invalid_address_in_a_column_is_a_row_problem_naming_it(world: World) -> None:
    """A bad Cc, Bcc or Reply-To address (or one with a header-breaking encoded word) makes its row a
    problem naming the column and the address; the other rows build."""
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account, **COLUMNS)
    listed = (
        "email,name,cc,bcc,reply to\r\n"
        "ada@example.com,Ada,boss@example.com;not-an-address,,\r\n"
        "bob@example.com,Bob,,=?utf-8?q?a=0D=0ABcc=3A_x=40evil.test?=@example.com,\r\n"
        'cy@example.com,Cy,,,"Sales <sales@example.com>"\r\n'
        "di@example.com,Di,,,\r\n"
    )
    built = await world.upload_recipients(user, campaign["id"], listed)
    assert built == {
        "rows": 4,
        "valid": 1,
        "problems": {"invalid_cc": 1, "invalid_bcc": 1, "invalid_reply_to": 1},
    }
    problems = await _problems(world, user, campaign["id"])
    assert [(row, problem) for row, problem, _ in problems] == [
        (1, "invalid_cc"),
        (2, "invalid_bcc"),
        (3, "invalid_reply_to"),
    ]
    assert problems[0][2].startswith("column 'cc' (cc_column): 'not-an-address' is not a valid address")
    assert problems[1][2].startswith("column 'bcc' (bcc_column): '=?utf-8?q?a=0D=0ABcc")
    assert problems[2][2].startswith("column 'reply to' (reply_to_column): 'Sales <sales@example.com>'")


async def test_more_than_gmails_100_recipients_is_a_row_problem(world: World) -> None:
    """To, Cc and Bcc together above 100 addresses (Gmail's per-message limit through its API) is a
    row problem; exactly 100 builds. More than 5 Reply-To addresses is one too."""
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account, **COLUMNS)

    def cells(prefix: str, count: int) -> str:
        return ";".join(f"{prefix}{i}@example.com" for i in range(count))

    listed = (
        "email,name,cc,bcc,reply to\r\n"
        f"ada@example.com,Ada,{cells('c', 60)},{cells('b', 39)},\r\n"
        f"bob@example.com,Bob,{cells('c', 60)},{cells('b', 40)},\r\n"
        f"cy@example.com,Cy,,,{cells('r', 6)}\r\n"
    )
    built = await world.upload_recipients(user, campaign["id"], listed)
    assert built == {"rows": 3, "valid": 1, "problems": {"too_many_recipients": 1, "invalid_reply_to": 1}}
    problems = await _problems(world, user, campaign["id"])
    assert [(row, problem) for row, problem, _ in problems] == [
        (2, "too_many_recipients"),
        (3, "invalid_reply_to"),
    ]
    assert "101 addresses" in problems[0][2]
    assert "at most 5 Reply-To" in problems[1][2]


async def test_a_column_the_list_lacks_is_refused(world: World) -> None:
    """A campaign naming a Cc column its CSV does not have refuses the upload, naming it."""
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account, cc_column="cc")
    response = await world.client.put(
        f"/v1/campaigns/{campaign['id']}/recipients",
        content=b"email,name\r\nada@example.com,Ada\r\n",
        headers={**world.auth(user), "content-type": "text/csv"},
    )
    assert response.status_code == 422, response.text
    assert "'cc' column (the campaign's cc_column)" in response.text


async def test_a_follow_up_keeps_the_rows_cc_bcc_and_reply_to(
    world: World, dispatcher: Dispatcher, builder: FollowUpBuilder, clock: FakeClock
) -> None:
    """Step 2 goes to the same To, Cc and Bcc as step 1, with the same Reply-To."""
    user, account = await world.user_with_account()
    world.fake.add_template(user, FIRST, subject="Hi {{name}}", html="<p>Dear {{name}}</p>")
    world.fake.add_template(user, SECOND, subject="Again {{name}}", html="<p>Again, {{name}}</p>")
    body = {
        "name": "Sequence",
        "account_id": account,
        "template_id": FIRST,
        "template_version": 1,
        "steps": [{"template_id": SECOND, "template_version": 1, "delay_hours": 1}],
        **COLUMNS,
    }
    listed = (
        "email,name,cc,bcc,reply to\n"
        "ada@example.com,Ada,boss@example.com,audit@example.com,sales@example.com\n"
    )
    await world.launch_campaign(user, body, listed)
    assert await dispatcher.dispatch_due_messages() == 1
    [first] = await world.commands()
    sent = c.EmailSent(
        message_id=first.message_id,
        account_id=account,
        gmail_id="g1",
        thread_id="t1",
        rfc_message_id=first.rfc_message_id,
        sent_at=clock.now(),
    )
    await world.consumed(await world.publish(sent))
    assert await builder.build_due(clock.now()) == 1
    clock.advance(hours=1, seconds=1)
    assert await dispatcher.dispatch_due_messages() == 1
    [second] = await world.commands()
    assert second.message_id != first.message_id
    assert (second.to, second.cc, second.bcc, second.reply_to) == (
        first.to,
        first.cc,
        first.bcc,
        first.reply_to,
    )
    assert second.reply_to == ["sales@example.com"]


async def test_a_one_off_email_takes_reply_to(world: World, dispatcher: Dispatcher) -> None:
    """POST /v1/emails accepts reply_to (normalized, at most 5, each checked) and the command carries it."""
    user, account = await world.user_with_account()
    base = {"account_id": account, "to": ["ada@example.com"], "subject": "Hi", "text": "Hello"}
    response = await world.client.post(
        "/v1/emails", json={**base, "reply_to": ["Team@Example.COM"]}, headers=world.auth(user)
    )
    assert response.status_code == 201, response.text
    email_id = response.json()["id"]
    assert (await world.email(user, email_id))["reply_to"] == ["Team@example.com"]
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert command.reply_to == ["Team@example.com"]
    for bad in (["x@example.com\r\nBcc: victim@evil.test"], [f"r{i}@example.com" for i in range(6)]):
        refused = await world.client.post(
            "/v1/emails", json={**base, "reply_to": bad}, headers=world.auth(user)
        )
        assert refused.status_code == 422, refused.text
        assert "reply_to" in refused.text


def test_a_cell_names_addresses_separated_by_commas_or_semicolons() -> None:
    """Commas and semicolons separate a CSV cell's addresses, blanks around them are dropped, and a
    JSON list names one address per item."""
    assert address_cell(" a@example.com ;b@example.com,, c@example.com ") == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]
    assert address_cell(None) == address_cell("") == address_cell(" ; ") == []
    assert address_cell(["a@example.com", " b@example.com "]) == ["a@example.com", "b@example.com"]
