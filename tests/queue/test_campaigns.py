"""Campaigns: building the list, the report, launching, windows and caps, pause/resume, progress, results."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mailmerger_queue.dispatch.dispatcher import Dispatcher
from mailmerger_queue.settings import QueueSettings
from mailmerger_shared import contracts as c
from tests.queue.world import FakeClock, World

LIST = (
    "email,name,files\r\n"
    "ada@example.com,Ada,\r\n"
    "not-an-address,Bob,\r\n"
    "grace@example.com,Grace,81\r\n"
    "ADA@example.com,Ada again,\r\n"
    "linus@example.com,Linus,999\r\n"
    "short@example.com\r\n"
)


async def _campaign(world: World, user: int, account: int, **fields: Any) -> dict[str, Any]:
    world.fake.add_template(user, 5, subject="Hi {{name}}", html="<p>Dear {{name}}</p>")
    body = {"name": "Launch", "account_id": account, "template_id": 5, "template_version": 1, **fields}
    response = await world.client.post("/v1/campaigns", json=body, headers=world.auth(user))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _rows(count: int) -> str:
    return "email,name\n" + "".join(f"r{i}@example.com,R{i}\n" for i in range(count))


async def _launched(world: World, rows: int, **schedule: Any) -> tuple[int, int, dict[str, Any]]:
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account, schedule=schedule)
    await world.upload_recipients(user, campaign["id"], _rows(rows))
    response = await world.client.post(
        f"/v1/campaigns/{campaign['id']}/launch", json={}, headers=world.auth(user)
    )
    assert response.status_code == 200, response.text
    return user, account, campaign


async def test_the_list_is_checked_row_by_row(world: World, settings: QueueSettings) -> None:
    """The report names invalid addresses, duplicates, unknown attachments and short rows by row number."""
    user, account = await world.user_with_account()
    world.fake.add_attachment(user, 81)
    campaign = await _campaign(world, user, account, attachments_column="files")
    built = await world.upload_recipients(user, campaign["id"], LIST)
    assert built == {
        "rows": 6,
        "valid": 2,
        "problems": {"invalid_address": 1, "duplicate": 1, "unknown_attachment": 1, "malformed_row": 1},
    }
    report = (
        await world.client.get(f"/v1/campaigns/{campaign['id']}/report", headers=world.auth(user))
    ).json()
    assert [(p["row"], p["problem"]) for p in report["problems"]] == [
        (2, "invalid_address"),
        (4, "duplicate"),
        (5, "unknown_attachment"),
        (6, "malformed_row"),
    ]
    assert report["problems"][1]["detail"] == "same address as row 1"
    preview = (
        await world.client.get(f"/v1/campaigns/{campaign['id']}/rows/3", headers=world.auth(user))
    ).json()
    assert (preview["subject"], preview["html"], preview["attachment_ids"]) == (
        "Hi Grace",
        "<p>Dear Grace</p>",
        [81],
    )


async def test_the_report_pages_with_an_opaque_cursor(world: World) -> None:
    """The report's cursor walks every problem row once, in row order; another list's cursor is a 400."""
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account)
    await world.upload_recipients(
        user, campaign["id"], "email,name\n" + "".join(f"bad{i},B{i}\n" for i in range(5))
    )
    url = f"/v1/campaigns/{campaign['id']}/report"
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        report = (await world.client.get(url, params=params, headers=world.auth(user))).json()
        seen += [p["row"] for p in report["problems"]]
        cursor = report["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, 2, 3, 4, 5]
    for forged in ("2", "ZW1haWxzOjE"):
        response = await world.client.get(url, params={"cursor": forged}, headers=world.auth(user))
        assert response.status_code == 400, forged


async def test_json_rows_missing_template_fields_are_reported(world: World) -> None:
    """A JSON row without a field the template uses is reported as missing_fields, naming it."""
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account)
    response = await world.client.put(
        f"/v1/campaigns/{campaign['id']}/recipients",
        json={"rows": [{"email": "a@example.com", "name": "A"}, {"email": "b@example.com"}]},
        headers=world.auth(user),
    )
    assert response.json()["problems"] == {"missing_fields": 1}
    report = (
        await world.client.get(f"/v1/campaigns/{campaign['id']}/report", headers=world.auth(user))
    ).json()
    assert report["problems"][0]["detail"] == "missing: name"


@pytest.mark.parametrize(
    ("cell", "character"),
    [
        ("Ada\u2028Bcc: x@evil.test", "a line separator (U+2028)"),
        ("Ada\u2029", "a paragraph separator (U+2029)"),
        ("Ada\x85", "a line break (NEL, U+0085)"),
        ("Ada\x1b[31m", "a control character (U+001B)"),
        ("Ada\x7f", "a control character (U+007F)"),
    ],
)
async def test_a_row_whose_rendered_subject_cannot_be_sent_is_a_row_problem(
    world: World, cell: str, character: str
) -> None:
    """A CSV cell putting a line separator or a control into the subject makes that row an
    invalid_subject problem naming the character; the other rows build, the upload is not refused."""
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account)
    rows = io.StringIO()
    csv.writer(rows).writerows([["email", "name"], ["a@example.com", cell], ["b@example.com", "Bob"]])
    built = await world.upload_recipients(user, campaign["id"], rows.getvalue())
    assert built == {"rows": 2, "valid": 1, "problems": {"invalid_subject": 1}}
    report = (
        await world.client.get(f"/v1/campaigns/{campaign['id']}/report", headers=world.auth(user))
    ).json()
    [problem] = report["problems"]
    assert (problem["row"], problem["problem"]) == (1, "invalid_subject")
    assert problem["detail"] == (
        f"the rendered subject contains {character} at character 7; "
        "a subject is one line of text without control characters"
    )


async def test_an_encoded_word_in_a_cell_is_subject_text(world: World, dispatcher: Dispatcher) -> None:
    """An RFC 2047 look-alike in a cell is ordinary text: the row builds and its command carries
    the subject as typed (the sender writes it encoded, so it cannot become a header)."""
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account)
    attack = "=?utf-8?q?x=0D=0ABcc:_someone@example.org?="
    built = await world.upload_recipients(user, campaign["id"], f"email,name\r\na@example.com,{attack}\r\n")
    assert built == {"rows": 1, "valid": 1, "problems": {}}
    response = await world.client.post(
        f"/v1/campaigns/{campaign['id']}/launch", json={}, headers=world.auth(user)
    )
    assert response.status_code == 200, response.text
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert (command.subject, command.to, command.bcc) == (f"Hi {attack}", ["a@example.com"], [])


async def test_an_address_with_an_encoded_word_is_an_invalid_address(world: World) -> None:
    """``=?...?=`` is legal in a local part but decoded by mail programs: the row is refused."""
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account)
    built = await world.upload_recipients(
        user, campaign["id"], "email,name\r\n=?utf-8?q?a=0D=0ABcc=3A_x=40evil.test?=@example.com,A\r\n"
    )
    assert built["problems"] == {"invalid_address": 1}


async def test_a_large_list_is_rendered_in_batches(world: World, settings: QueueSettings) -> None:
    """Rows reach render-batch a batch at a time, never the whole list at once."""
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account)
    world.fake.render_calls.clear()
    built = await world.upload_recipients(user, campaign["id"], _rows(230))
    assert built["valid"] == 230
    assert max(world.fake.render_calls) <= settings.compose.build_batch_rows
    assert sum(world.fake.render_calls) == 230


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"window_start": "09:00"}, "window_end"),
        ({"spacing_seconds": 10, "jitter_seconds": 20}, "jitter_seconds"),
        ({"weekdays": [8]}, "weekdays"),
    ],
)
async def test_bad_schedules_are_refused_naming_the_field(
    world: World, schedule: dict[str, Any], field: str
) -> None:
    """An unknown time zone, half a window, too much jitter or day 8 is refused, naming the field."""
    user, account = await world.user_with_account()
    world.fake.add_template(user, 5, subject="s", html="h")
    body = {"name": "x", "account_id": account, "template_id": 5, "template_version": 1, "schedule": schedule}
    response = await world.client.post("/v1/campaigns", json=body, headers=world.auth(user))
    assert response.status_code in (400, 422)
    assert field in response.text


async def test_bad_uploads_say_what_to_fix(world: World) -> None:
    """No address column, non-UTF-8 bytes, or another media type are refused with what to change."""
    user, account = await world.user_with_account()
    campaign = await _campaign(world, user, account)
    url = f"/v1/campaigns/{campaign['id']}/recipients"
    csv_headers = {**world.auth(user), "content-type": "text/csv"}
    no_column = await world.client.put(url, content=b"mail,name\nx@example.com,X\n", headers=csv_headers)
    assert (no_column.status_code, "'email'" in no_column.json()["detail"]) == (422, True)
    latin1 = await world.client.put(
        url, content="email,name\né@example.com,É\n".encode("latin-1"), headers=csv_headers
    )
    assert (latin1.status_code, "UTF-8" in latin1.json()["detail"]) == (422, True)
    xml = await world.client.put(
        url, content=b"<rows/>", headers={**world.auth(user), "content-type": "application/xml"}
    )
    assert xml.status_code == 415


async def test_launch_is_refused_while_rows_have_problems_unless_skipped(
    world: World, dispatcher: Dispatcher
) -> None:
    """409 while problems remain; with skip_invalid only the valid rows are scheduled and sent."""
    user, account = await world.user_with_account()
    world.fake.add_attachment(user, 81)
    campaign = await _campaign(world, user, account, attachments_column="files")
    await world.upload_recipients(user, campaign["id"], LIST)
    url = f"/v1/campaigns/{campaign['id']}/launch"
    refused = await world.client.post(url, json={}, headers=world.auth(user))
    assert refused.status_code == 409
    assert "skip_invalid" in refused.json()["detail"]
    launched = await world.client.post(url, json={"skip_invalid": True}, headers=world.auth(user))
    assert launched.json()["state"] == "running"
    assert await dispatcher.dispatch_due_messages() == 2
    commands = sorted(await world.commands(), key=lambda command: command.to)
    assert [(cmd.to, cmd.subject) for cmd in commands] == [
        (["ada@example.com"], "Hi Ada"),
        (["grace@example.com"], "Hi Grace"),
    ]
    assert [a.attachment_id for a in commands[1].attachments] == [81]
    assert len({cmd.rfc_message_id for cmd in commands}) == 2


async def test_the_sending_window_is_respected_in_the_campaigns_time_zone(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """Weekdays 09:00 to 17:00 in Paris: nothing on Saturday or at 08:59, sending from 09:00 Monday."""
    paris = ZoneInfo("Europe/Paris")
    clock.current = datetime(2030, 1, 5, 12, 0, tzinfo=paris).astimezone(UTC)  # a Saturday
    start = clock.current.isoformat()
    await _launched(
        world,
        3,
        timezone="Europe/Paris",
        window_start="09:00",
        window_end="17:00",
        weekdays=[1, 2, 3, 4, 5],
        start_at=start,
    )
    assert await dispatcher.dispatch_due_messages() == 0
    clock.current = datetime(2030, 1, 7, 8, 59, tzinfo=paris).astimezone(UTC)  # Monday
    assert await dispatcher.dispatch_due_messages() == 0
    clock.current = datetime(2030, 1, 7, 9, 0, tzinfo=paris).astimezone(UTC)
    assert await dispatcher.dispatch_due_messages() == 3


async def test_the_daily_cap_counts_the_local_day(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """A cap of 2 sends two today and the next ones after local midnight."""
    tokyo = ZoneInfo("Asia/Tokyo")
    clock.current = datetime(2030, 3, 1, 22, 0, tzinfo=tokyo).astimezone(UTC)
    await _launched(world, 5, timezone="Asia/Tokyo", daily_cap=2, start_at=clock.current.isoformat())
    assert await dispatcher.dispatch_due_messages() == 2
    clock.current = datetime(2030, 3, 1, 23, 59, tzinfo=tokyo).astimezone(UTC)
    assert await dispatcher.dispatch_due_messages() == 0
    clock.current = datetime(2030, 3, 2, 0, 0, 1, tzinfo=tokyo).astimezone(UTC)
    assert await dispatcher.dispatch_due_messages() == 2


async def test_spacing_sends_one_message_per_interval(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """With 30 s spacing, one message goes, the next not before 30 s later."""
    await _launched(world, 3, spacing_seconds=30, start_at=clock.current.isoformat())
    assert await dispatcher.dispatch_due_messages() == 1
    clock.advance(seconds=29)
    assert await dispatcher.dispatch_due_messages() == 0
    clock.advance(seconds=1)
    assert await dispatcher.dispatch_due_messages() == 1


async def test_pause_and_resume_never_send_twice(
    world: World, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    """Paused, nothing goes; resumed, the rest goes; every row is published exactly once."""
    user, account, campaign = await _launched(world, 40, start_at=clock.current.isoformat())
    await world.client.patch(
        f"/v1/senders/{account}", json={"per_minute_limit": 1000}, headers=world.auth(user)
    )
    published: Counter[int] = Counter()
    assert await dispatcher.dispatch_due_messages() > 0
    published.update(cmd.message_id for cmd in await world.commands())
    assert (
        await world.client.post(f"/v1/campaigns/{campaign['id']}/pause", headers=world.auth(user))
    ).status_code == 200
    clock.advance(minutes=2)
    assert await dispatcher.dispatch_due_messages() == 0
    await world.client.post(f"/v1/campaigns/{campaign['id']}/resume", headers=world.auth(user))
    for _ in range(100):
        await dispatcher.dispatch_due_messages()
        published.update(cmd.message_id for cmd in await world.commands())
        clock.advance(seconds=1)
        if len(published) == 40:
            break
    assert len(published) == 40
    assert set(published.values()) == {1}


async def test_a_users_campaign_does_not_delay_direct_emails(
    world: World, dispatcher: Dispatcher, settings: QueueSettings, clock: FakeClock
) -> None:
    """With a big campaign running, the same user's direct email written after it goes in the
    account's next turn, not after the campaign: an account's streams take turns, across ticks too."""
    user, account, _ = await _launched(world, 120, start_at=clock.current.isoformat())
    await world.client.patch(
        f"/v1/senders/{account}", json={"per_minute_limit": 150}, headers=world.auth(user)
    )
    interval = 60 / (150 * settings.dispatch.pace_fraction)  # a turn per tick: one message
    assert await dispatcher.dispatch_due_messages() == 1
    direct = await world.compose(user, account, send_at=(clock.current + timedelta(seconds=0.1)).isoformat())
    clock.advance(seconds=interval)
    assert await dispatcher.dispatch_due_messages() == 1
    clock.advance(seconds=interval)
    assert await dispatcher.dispatch_due_messages() == 1
    sent = [cmd.message_id for cmd in await world.commands()]
    assert len(sent) == 3
    assert sent[1] == direct["id"]  # between two of the campaign's


async def test_cancelled_campaign_sends_nothing_more(world: World, dispatcher: Dispatcher) -> None:
    """Cancelling cancels every scheduled message of the campaign."""
    user, _, campaign = await _launched(world, 5)
    response = await world.client.post(f"/v1/campaigns/{campaign['id']}/cancel", headers=world.auth(user))
    assert response.json()["state"] == "cancelled"
    assert await dispatcher.dispatch_due_messages() == 0
    progress = (
        await world.client.get(f"/v1/campaigns/{campaign['id']}/progress", headers=world.auth(user))
    ).json()
    assert progress["counts"]["cancelled"] == 5


async def _finish(world: World, dispatcher: Dispatcher, account: int, *, fail: set[int]) -> None:
    """Dispatch, then answer every command: rows numbered in ``fail`` fail, the others are sent."""
    assert await dispatcher.dispatch_due_messages() > 0
    envelopes = []
    for command in await world.commands():
        if command.to[0] in {f"r{i}@example.com" for i in fail}:
            event: c.Message = c.EmailFailed(
                message_id=command.message_id, account_id=account, reason="badRequest", detail="nope"
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


async def test_progress_streams_until_the_campaign_completes(world: World, dispatcher: Dispatcher) -> None:
    """Progress counts states with a rate and ETA; the event stream ends once the campaign is completed."""
    began = datetime.now(UTC)
    user, account, campaign = await _launched(world, 4)
    await _finish(world, dispatcher, account, fail={3})
    await dispatcher.housekeeping()
    progress = (
        await world.client.get(f"/v1/campaigns/{campaign['id']}/progress", headers=world.auth(user))
    ).json()
    assert (progress["state"], progress["counts"]["sent"], progress["counts"]["failed"]) == (
        "completed",
        3,
        1,
    )
    # 3 sent within the few seconds of the run: the rate of the run itself, not a ten-minute average (0.3).
    seconds = max((datetime.now(UTC) - began).total_seconds(), 1)
    assert (progress["eta_seconds"], progress["sent_per_minute"] >= 3 / seconds * 60) == (0.0, True)
    async with world.client.stream(
        "GET", f"/v1/campaigns/{campaign['id']}/progress/stream", headers=world.auth(user)
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join([chunk async for chunk in stream.aiter_text()])
    data = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
    assert data[-1]["state"] == "completed"


async def test_results_export_and_retry_of_the_failed(world: World, dispatcher: Dispatcher) -> None:
    """The CSV lists each row's outcome; retry-failed schedules exactly the failed ones again."""
    user, account, campaign = await _launched(world, 3)
    await _finish(world, dispatcher, account, fail={1})
    response = await world.client.get(f"/v1/campaigns/{campaign['id']}/results.csv", headers=world.auth(user))
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(row["address"], row["state"]) for row in rows] == [
        ("r0@example.com", "sent"),
        ("r1@example.com", "failed"),
        ("r2@example.com", "sent"),
    ]
    assert rows[0]["gmail_id"].startswith("g")
    retried = await world.client.post(
        f"/v1/campaigns/{campaign['id']}/retry-failed", headers=world.auth(user)
    )
    assert retried.json() == {"retried": 1}
    assert await dispatcher.dispatch_due_messages() == 1
    [command] = await world.commands()
    assert (command.to, command.attempt) == (["r1@example.com"], 2)


async def test_another_users_campaign_is_not_found_on_every_route(world: World) -> None:
    """Every campaign route answers 404 to a user who does not own the campaign."""
    owner, _, campaign = await _launched(world, 1)
    intruder, _ = await world.user_with_account()
    headers = world.auth(intruder)
    base = f"/v1/campaigns/{campaign['id']}"
    for method, path in [
        ("GET", ""),
        ("GET", "/report"),
        ("GET", "/rows/1"),
        ("GET", "/progress"),
        ("GET", "/progress/stream"),
        ("GET", "/results.csv"),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("POST", "/cancel"),
        ("POST", "/retry-failed"),
    ]:
        response = await world.client.request(method, base + path, headers=headers)
        assert response.status_code == 404, (method, path)
    assert (await world.client.post(f"{base}/launch", json={}, headers=headers)).status_code == 404
    upload = await world.client.put(
        f"{base}/recipients", content=b"email\n", headers={**headers, "content-type": "text/csv"}
    )
    assert upload.status_code == 404
    assert (await world.client.get("/v1/campaigns", headers=headers)).json() == []
    assert (await world.client.get(base, headers=world.auth(owner))).status_code == 200
