"""``/v1/emails``: composing, reading, listing, cancelling and sending now, owner by owner."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from mailmerger_queue.dispatch.dispatcher import Dispatcher
from tests.queue.world import World


async def test_composed_email_is_scheduled_with_a_fixed_message_id(world: World) -> None:
    """A composed email is scheduled now, with an RFC Message-ID and a creation transition."""
    user, account = await world.user_with_account()
    email = await world.compose(user, account, to=["Ada@Example.COM"], cc=["b@example.org"])
    assert email["state"] == "scheduled"
    assert email["to"] == ["Ada@example.com"]
    assert re.fullmatch(rf"<mm\.{email['id']}\.[0-9a-f]{{16}}@mailmerger\.local>", email["rfc_message_id"])
    assert [(t["from_state"], t["to_state"]) for t in email["transitions"]] == [(None, "scheduled")]
    assert datetime.fromisoformat(email["send_at"]) <= datetime.now(UTC)


async def test_template_is_rendered_with_the_row_of_fields(world: World) -> None:
    """A template version and one row of fields become the email's subject and body."""
    user, account = await world.user_with_account()
    world.fake.add_template(user, 7, subject="Hello {{name}}", html="<p>Dear {{name}} at {{company}}</p>")
    email = await world.compose(
        user,
        account,
        subject=None,
        html=None,
        template={"template_id": 7, "version": 1, "fields": {"name": "Ada", "company": "Engines"}},
    )
    assert email["subject"] == "Hello Ada"
    assert email["html"] == "<p>Dear Ada at Engines</p>"


async def test_missing_template_fields_are_named(world: World) -> None:
    """A row without a field the template uses is a 422 naming the field."""
    user, account = await world.user_with_account()
    world.fake.add_template(user, 7, subject="Hello {{name}}", html="{{company}}")
    response = await world.client.post(
        "/v1/emails",
        json={
            "account_id": account,
            "to": ["a@example.com"],
            "template": {"template_id": 7, "version": 1, "fields": {"name": "A"}},
        },
        headers=world.auth(user),
    )
    assert response.status_code == 422
    assert "company" in response.json()["detail"]


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("subject", {"subject": "Hi\r\nBcc: victim@example.com"}),
        ("subject", {"subject": "Hi\r\n Bcc: victim@example.com"}),
        ("subject", {"subject": "Hi\u2028Bcc: victim@example.com"}),
        ("subject", {"subject": "Hi\u2029"}),
        ("subject", {"subject": "Hi\x85"}),
        ("subject", {"subject": "Hi\x1b"}),
        ("subject", {"subject": "Hi\x00"}),
        ("to[0]", {"to": ["=?utf-8?q?a=0D=0ABcc=3A_x=40evil.test?=@example.com"]}),
        ("to[0]", {"to": ["a@example.com\nBcc: victim@example.com"]}),
        ("cc[1]", {"cc": ["ok@example.com", "bad\x00@example.com"]}),
        ("bcc[0]", {"bcc": ["not an address"]}),
        ("to", {"to": []}),
        ("account_id", {"account_id": 999_999_999}),
        ("attachment_ids", {"attachment_ids": [424242]}),
        ("subject", {"subject": None}),
        ("html", {"html": None}),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    world: World, field: str, overrides: dict[str, object]
) -> None:
    """Header injection, invalid addresses and unknown references are refused, naming what to fix."""
    user, account = await world.user_with_account()
    body = {"account_id": account, "to": ["a@example.com"], "subject": "Hi", "html": "<p>x</p>", **overrides}
    response = await world.client.post("/v1/emails", json=body, headers=world.auth(user))
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


@pytest.mark.parametrize(
    ("subject", "character"),
    [
        ("Hi\u2028Bcc: victim@example.com", "a line separator (U+2028) at character 3"),
        ("Hi\u2029", "a paragraph separator (U+2029) at character 3"),
        ("Hi\x85", "a line break (NEL, U+0085) at character 3"),
        ("Hi\r\n Bcc: victim@example.com", "a line break (CR) at character 3"),
        ("Hi\x1b[31m", "a control character (U+001B) at character 3"),
    ],
)
async def test_a_subject_the_sender_could_not_write_is_refused_saying_what_to_fix(
    world: World, subject: str, character: str
) -> None:
    """Line breaks, controls and Unicode line/paragraph separators in a subject are a 422 naming
    the field and the character (they used to be accepted, then crash the sender)."""
    user, account = await world.user_with_account()
    body = {"account_id": account, "to": ["a@example.com"], "subject": subject, "html": "<p>x</p>"}
    response = await world.client.post("/v1/emails", json=body, headers=world.auth(user))
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        f"subject: contains {character}; a subject is one line of text without control characters"
    )


@pytest.mark.parametrize("value", ["Ada\u2028Bcc: victim@example.com", "Ada\x1b"])
async def test_a_template_rendering_an_unsendable_subject_is_refused(world: World, value: str) -> None:
    """A template field that puts a separator or control into the subject is a 422 pointing at
    the fields."""
    user, account = await world.user_with_account()
    world.fake.add_template(user, 7, subject="Hello {{name}}", html="<p>x</p>")
    response = await world.client.post(
        "/v1/emails",
        json={
            "account_id": account,
            "to": ["a@example.com"],
            "template": {"template_id": 7, "version": 1, "fields": {"name": value}},
        },
        headers=world.auth(user),
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("template.fields (the rendered subject): contains ")


async def test_an_encoded_word_in_a_subject_is_kept_as_text(world: World, dispatcher: Dispatcher) -> None:
    """``=?...?=`` in a subject is accepted as the text it is and reaches the sender unchanged,
    with exactly the recipients given (the sender encodes it; it cannot become a header)."""
    user, account = await world.user_with_account()
    attack = "=?utf-8?q?x=0D=0ABcc:_someone@example.org?="
    email = await world.compose(user, account, subject=attack)
    assert email["subject"] == attack
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert (command.subject, command.to, command.cc, command.bcc) == (attack, ["ada@example.com"], [], [])


async def test_too_many_recipients_are_refused(world: World) -> None:
    """Gmail takes at most 100 recipients per message; more is a 422 saying so."""
    user, account = await world.user_with_account()
    body = {
        "account_id": account,
        "to": [f"r{i}@example.com" for i in range(101)],
        "subject": "x",
        "text": "y",
    }
    response = await world.client.post("/v1/emails", json=body, headers=world.auth(user))
    assert response.status_code == 422
    assert "100" in response.json()["detail"]


async def test_send_at_without_a_time_zone_is_refused(world: World) -> None:
    """A naive send_at is ambiguous: 400 asking for a time zone."""
    user, account = await world.user_with_account()
    body = {
        "account_id": account,
        "to": ["a@example.com"],
        "subject": "x",
        "text": "y",
        "send_at": "2030-01-01T09:00:00",
    }
    response = await world.client.post("/v1/emails", json=body, headers=world.auth(user))
    assert response.status_code == 400
    assert "timezone" in response.text


async def test_template_and_body_together_are_refused(world: World) -> None:
    """Either a template or a subject/body: both at once is a 422."""
    user, account = await world.user_with_account()
    world.fake.add_template(user, 7, subject="S", html="H")
    response = await world.client.post(
        "/v1/emails",
        json={
            "account_id": account,
            "to": ["a@example.com"],
            "subject": "x",
            "template": {"template_id": 7, "version": 1},
        },
        headers=world.auth(user),
    )
    assert response.status_code == 422
    assert "either a template" in response.json()["detail"]


async def test_attachments_are_resolved_through_storage(world: World, dispatcher: Dispatcher) -> None:
    """Attachment ids become AttachmentRefs (key, hash, name, type, size) in the SendEmail."""
    user, account = await world.user_with_account()
    info = world.fake.add_attachment(user, 31)
    email = await world.compose(user, account, attachment_ids=[31])
    assert email["attachment_ids"] == [31]
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    [ref] = command.attachments
    assert (ref.object_key, ref.sha256, ref.filename, ref.size) == (
        info.object_key,
        info.sha256,
        info.filename,
        info.size,
    )


async def test_another_users_attachment_is_unknown(world: World) -> None:
    """An attachment of someone else cannot be attached."""
    user, account = await world.user_with_account()
    world.fake.add_attachment(user + 1, 32)
    response = await world.client.post(
        "/v1/emails",
        json={
            "account_id": account,
            "to": ["a@example.com"],
            "subject": "x",
            "text": "y",
            "attachment_ids": [32],
        },
        headers=world.auth(user),
    )
    assert response.status_code == 422
    assert "attachment 32" in response.json()["detail"]


async def test_unreachable_templates_service_is_503(world: World) -> None:
    """When templates cannot be reached, composing from a template is a 503, not a 500."""
    user, account = await world.user_with_account()
    world.fake.down.add("templates")
    response = await world.client.post(
        "/v1/emails",
        json={"account_id": account, "to": ["a@example.com"], "template": {"template_id": 1, "version": 1}},
        headers=world.auth(user),
    )
    assert response.status_code == 503
    assert "templates" in response.json()["detail"]


async def test_another_users_email_is_not_found_on_every_route(world: World) -> None:
    """Reading, cancelling or sending another user's email is a 404; lists never show it."""
    owner, account = await world.user_with_account()
    email = await world.compose(owner, account)
    intruder, _ = await world.user_with_account()
    headers = world.auth(intruder)
    assert (await world.client.get(f"/v1/emails/{email['id']}", headers=headers)).status_code == 404
    assert (await world.client.post(f"/v1/emails/{email['id']}/cancel", headers=headers)).status_code == 404
    assert (await world.client.post(f"/v1/emails/{email['id']}/send-now", headers=headers)).status_code == 404
    listed = await world.client.get("/v1/emails", headers=headers)
    assert listed.json()["items"] == []
    assert (await world.email(owner, email["id"]))["state"] == "scheduled"


async def test_list_filters_and_pages_with_a_cursor(world: World) -> None:
    """Filters by state and send time; the cursor walks every item exactly once, newest first."""
    user, account = await world.user_with_account()
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ids = [(await world.compose(user, account, send_at=later))["id"] for _ in range(5)]
    await world.client.post(f"/v1/emails/{ids[0]}/cancel", headers=world.auth(user))
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "state": "scheduled"}
        if cursor:
            params["cursor"] = cursor
        page = (await world.client.get("/v1/emails", params=params, headers=world.auth(user))).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids[1:], reverse=True)
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    none_before = await world.client.get("/v1/emails", params={"send_before": soon}, headers=world.auth(user))
    assert none_before.json()["items"] == []


async def test_list_cursor_is_opaque_and_a_forged_one_is_a_400(world: World) -> None:
    """next_cursor is not an email id, and a cursor this list never handed out answers 400."""
    user, account = await world.user_with_account()
    ids = [(await world.compose(user, account))["id"] for _ in range(2)]
    page = (await world.client.get("/v1/emails", params={"limit": 1}, headers=world.auth(user))).json()
    assert page["next_cursor"] not in {str(i) for i in ids}
    for forged in ("12", "cmVwb3J0OjE", "not a cursor"):
        response = await world.client.get("/v1/emails", params={"cursor": forged}, headers=world.auth(user))
        assert response.status_code == 400, forged


async def test_cancel_before_dispatch_wins_and_is_recorded(world: World, dispatcher: Dispatcher) -> None:
    """A cancelled email is never dispatched; the transition says who cancelled it."""
    user, account = await world.user_with_account()
    email = await world.compose(user, account)
    response = await world.client.post(f"/v1/emails/{email['id']}/cancel", headers=world.auth(user))
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert response.json()["transitions"][-1]["reason"] == "cancelled by the user"
    assert await dispatcher.dispatch_due_messages() == 0
    assert await world.commands() == []


async def test_cancel_after_dispatch_is_a_conflict(world: World, dispatcher: Dispatcher) -> None:
    """Once dispatched, cancelling answers 409 saying the email's state."""
    user, account = await world.user_with_account()
    email = await world.compose(user, account)
    await dispatcher.dispatch_due_messages()
    response = await world.client.post(f"/v1/emails/{email['id']}/cancel", headers=world.auth(user))
    assert response.status_code == 409
    assert "dispatched" in response.json()["detail"]


async def test_openapi_document_describes_the_public_routes(world: World) -> None:
    """The queue's OpenAPI document builds and lists its v1 and legacy routes."""
    response = await world.client.get("/schema/queue/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/v1/emails",
        "/v1/campaigns/{campaign_id}/launch",
        "/v1/senders",
        "/api/queue/get-email-queue",
    ):
        assert path in paths, path
