"""A campaign of 1,000 recipients, from sign-up to the emulated mailbox, through the gateway.

The module runs the journey once (sign up, connect Gmail, upload a resume and two attachments,
write a template, build and launch the campaign, follow its progress stream to the end); each test
then checks one thing the user was promised, at the API or at the emulator.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import eventually
from tests.system.harness import (
    PDF,
    RunningSystem,
    User,
    connect_gmail,
    emulator_counts,
    emulator_messages,
    header,
    sign_up,
)

pytestmark = pytest.mark.system

RECIPIENTS = 1000
SUBJECT = "Hello {{ first_name }}, about {{ role }}"
HTML = (
    "<p>Dear {{ first_name }} {{ last_name }},</p>"
    "{% if company %}<p>How is everyone at {{ company }}?</p>{% else %}<p>Hope you are well.</p>{% endif %}"
    "<p>I am applying for {{ role }}.</p>"
)


@dataclass
class Journey:
    user: User
    campaign_id: int
    rows: list[dict[str, str]]
    attachment_names: dict[int, str]
    resume_id: int
    build: dict[str, Any]
    final_progress: dict[str, Any]
    ledger: dict[str, dict[str, Any]]  # by recipient address
    delivered: list[dict[str, Any]]
    counts: dict[str, Any]


def recipient_rows(offer_id: int, notes_id: int, recipients: int = RECIPIENTS) -> list[dict[str, str]]:
    """Per-recipient fields; a third each with no, one and two attachments of their own."""
    files = ["", str(offer_id), f"{offer_id};{notes_id}"]
    return [
        {
            "email": f"recipient{i:04d}@example.org",
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "company": f"Company{i}" if i % 2 else "",
            "role": f"Role {i % 7}",
            "files": files[i % 3],
        }
        for i in range(recipients)
    ]


def as_csv(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


async def follow_progress(client: httpx.AsyncClient, campaign_id: int) -> dict[str, Any]:
    """Read the campaign's progress stream to its last event (the campaign finished)."""
    last: dict[str, Any] = {}
    async with (
        asyncio.timeout(100),
        client.stream("GET", f"/v1/campaigns/{campaign_id}/progress/stream", timeout=100) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                last = json.loads(line.removeprefix("data:").strip())
    return last


async def ledger_by_address(client: httpx.AsyncClient, campaign_id: int) -> dict[str, dict[str, Any]]:
    emails: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"campaign_id": campaign_id, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/emails/", params=params)).json()
        for item in page["items"]:
            emails[item["to"][0]] = item
        cursor = page["next_cursor"]
        if not cursor:
            return emails


async def raise_limits(system: RunningSystem, user: User) -> None:
    """A Workspace-sized account: the product's pacing (the harness's default pace is 60,000/min) and
    the emulator's quota both let 1,000 through."""
    response = await user.client.patch(f"/v1/senders/{user.account_id}", json={"daily_limit": 10_000})
    assert response.status_code == 200, response.text
    async with httpx.AsyncClient(base_url=system.emulator_url) as operator:
        response = await operator.patch(
            f"/_emulator/users/{user.gmail}",
            json={"units_per_minute": 1_000_000, "daily_send_cap": 10_000},
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
async def journey(system: RunningSystem) -> AsyncIterator[Journey]:
    user = await sign_up(system, "campaigner")
    try:
        yield await run_journey(system, user)
    finally:
        await user.client.aclose()


@dataclass
class PreparedCampaign:
    """A campaign built and ready to launch: its recipients' rows and the attachments uploaded."""

    campaign_id: int
    rows: list[dict[str, str]]
    uploaded: dict[str, int]  # file name -> attachment id
    build: dict[str, Any]


async def prepare_campaign(
    system: RunningSystem, user: User, recipients: int = RECIPIENTS
) -> PreparedCampaign:
    """What the user does before launching: connect Gmail, upload a resume and two attachments,
    write a template, create the campaign and upload its recipients (with per-row attachments)."""
    await connect_gmail(user, system.base_url)
    await raise_limits(system, user)
    client = user.client

    uploaded = {}
    for name, content, kind, media in (
        ("resume.pdf", PDF + b"%resume", "resume", "application/pdf"),
        ("offer.pdf", PDF + b"%offer", "other", "application/pdf"),
        ("notes.txt", b"notes for the recipient\n", "other", "text/plain"),
    ):
        response = await client.post(
            "/v1/attachments/", files={"file": (name, content, media)}, data={"kind": kind}
        )
        assert response.status_code == 201, response.text
        uploaded[name] = response.json()["id"]

    response = await client.post(
        "/v1/templates/", json={"name": "Application", "subject": SUBJECT, "html": HTML}
    )
    assert response.status_code == 201, response.text
    template = response.json()

    response = await client.post(
        "/v1/campaigns/",
        json={
            "name": "Applications",
            "account_id": user.account_id,
            "template_id": template["id"],
            "template_version": template["version"],
            "attachments_column": "files",
            "attachment_ids": [uploaded["resume.pdf"]],
        },
    )
    assert response.status_code == 201, response.text
    campaign_id = response.json()["id"]

    rows = recipient_rows(uploaded["offer.pdf"], uploaded["notes.txt"], recipients)
    response = await client.put(
        f"/v1/campaigns/{campaign_id}/recipients",
        content=as_csv(rows),
        headers={"Content-Type": "text/csv"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return PreparedCampaign(campaign_id=campaign_id, rows=rows, uploaded=uploaded, build=response.json())


async def launch(user: User, campaign_id: int) -> None:
    response = await user.client.post(f"/v1/campaigns/{campaign_id}/launch", json={})
    assert response.status_code == 200, response.text


async def run_journey(system: RunningSystem, user: User) -> Journey:
    """Everything the user does, from connecting Gmail to the campaign's last progress event."""
    prepared = await prepare_campaign(system, user)
    await launch(user, prepared.campaign_id)
    final_progress = await follow_progress(user.client, prepared.campaign_id)

    counts = await emulator_counts(system.emulator_url, user.gmail)
    return Journey(
        user=user,
        campaign_id=prepared.campaign_id,
        rows=prepared.rows,
        attachment_names={i: name for name, i in prepared.uploaded.items()},
        resume_id=prepared.uploaded["resume.pdf"],
        build=prepared.build,
        final_progress=final_progress,
        ledger=await ledger_by_address(user.client, prepared.campaign_id),
        delivered=await emulator_messages(system.emulator_url, user.gmail or ""),
        counts=counts,
    )


def expected_html(row: dict[str, str]) -> str:
    company = (
        f"<p>How is everyone at {row['company']}?</p>" if row["company"] else "<p>Hope you are well.</p>"
    )
    return (
        f"<p>Dear {row['first_name']} {row['last_name']},</p>{company}<p>I am applying for {row['role']}.</p>"
    )


def by_recipient(journey: Journey) -> dict[str, dict[str, Any]]:
    return {message["to"][0]: message for message in journey.delivered}


async def test_campaign_build_accepts_every_recipient_row(journey: Journey) -> None:
    """The uploaded CSV of 1,000 rows with fields and per-row attachments builds without a problem."""
    assert journey.build == {"rows": RECIPIENTS, "valid": RECIPIENTS, "problems": {}}


async def test_progress_stream_ends_with_the_campaign_completed_and_every_message_sent(
    journey: Journey,
) -> None:
    """The SSE progress stream's last event says completed, 1,000 sent, nothing pending or failed."""
    progress = journey.final_progress
    assert progress["state"] == "completed", progress
    assert progress["total"] == RECIPIENTS
    assert {state: n for state, n in progress["counts"].items() if n} == {"sent": RECIPIENTS}


async def test_every_recipient_receives_exactly_one_message(journey: Journey) -> None:
    """At the emulator: 1,000 distinct Message-IDs, each delivered once, one per recipient address."""
    assert journey.counts["total"] == RECIPIENTS
    assert set(journey.counts["counts"].values()) == {1}
    assert sorted(m["to"][0] for m in journey.delivered) == sorted(r["email"] for r in journey.rows)


async def test_each_message_is_rendered_with_its_recipients_fields(journey: Journey) -> None:
    """Subject and HTML are the template rendered with the row's own fields, both if-branches taken."""
    delivered = by_recipient(journey)
    for row in journey.rows:
        message = delivered[row["email"]]
        assert message["subject"] == f"Hello {row['first_name']}, about {row['role']}"
        assert message["html"].strip() == expected_html(row), row["email"]
        assert row["first_name"] in message["text"]


async def test_each_message_carries_the_resume_and_its_rows_attachments(journey: Journey) -> None:
    """The campaign's resume plus the attachments the row names, under their uploaded file names."""
    delivered = by_recipient(journey)
    names = journey.attachment_names
    for row in journey.rows:
        wanted = [names[journey.resume_id]] + [names[int(i)] for i in row["files"].split(";") if i]
        attached = delivered[row["email"]]["attachments"]
        assert sorted(a["filename"] for a in attached) == sorted(wanted), row["email"]
        assert all(a["size"] > 0 for a in attached)


async def test_each_message_has_the_ledgers_message_id_and_the_accounts_from(journey: Journey) -> None:
    """Message-ID is the ledger's rfc_message_id for that recipient; From is the connected Gmail."""
    delivered = by_recipient(journey)
    for address, email in journey.ledger.items():
        message = delivered[address]
        assert header(message, "Message-ID") == [email["rfc_message_id"]]
        assert email["state"] == "sent"
        assert email["gmail_id"] == message["id"]
        [sender] = header(message, "From")
        assert sender.endswith(f"<{journey.user.gmail}>")


async def test_results_csv_lists_every_row_as_sent(journey: Journey) -> None:
    """The per-recipient results CSV has one ``sent`` line per row, with its Gmail id."""
    response = await journey.user.client.get(f"/v1/campaigns/{journey.campaign_id}/results.csv")
    assert response.status_code == 200
    results = list(csv.DictReader(io.StringIO(response.text)))
    assert len(results) == RECIPIENTS
    assert {r["state"] for r in results} == {"sent"}
    assert all(r["gmail_id"] for r in results)


# --- sending again: a new attempt that reaches Gmail ---------------------------------------------


async def inject_fault(system: RunningSystem, gmail: str, **rule: Any) -> None:
    async with httpx.AsyncClient(base_url=system.emulator_url, timeout=30.0) as operator:
        response = await operator.post(
            "/_emulator/faults", json={"user": gmail, "methods": ["messages.send"], "count": 1, **rule}
        )
    assert response.status_code == 201, response.text


async def email_in_state(user: User, email_id: int, state: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        email: dict[str, Any] = (await user.client.get(f"/v1/emails/{email_id}")).json()
        return email if email["state"] == state else None

    return await eventually(reached, timeout=30)


async def compose_one(user: User) -> dict[str, Any]:
    response = await user.client.post(
        "/v1/emails/",
        json={"account_id": user.account_id, "to": ["ada@example.org"], "subject": "Hi", "html": "<p>Hi</p>"},
    )
    assert response.status_code == 201, response.text
    email: dict[str, Any] = response.json()
    return email


async def test_a_failed_email_sent_again_reaches_gmail(system: RunningSystem, sending_user: User) -> None:
    """Send-now on a failed email is a new attempt Gmail receives, not the failure replayed."""
    assert sending_user.gmail is not None
    await inject_fault(system, sending_user.gmail, kind="error", status=400, reason="badRequest")
    email = await compose_one(sending_user)
    await email_in_state(sending_user, email["id"], "failed")
    response = await sending_user.client.post(f"/v1/emails/{email['id']}/send-now")
    assert response.status_code == 200, response.text
    sent = await email_in_state(sending_user, email["id"], "sent")
    counts = await emulator_counts(system.emulator_url, sending_user.gmail)
    assert {rfc.strip("<>"): n for rfc, n in counts["counts"].items()} == {
        sent["rfc_message_id"].strip("<>"): 1
    }


async def test_an_unconfirmed_email_is_the_users_to_resolve(
    system: RunningSystem, sending_user: User
) -> None:
    """With gmail.send alone a dropped answer ends unconfirmed; "mark as sent" settles it, sending nothing."""
    assert sending_user.gmail is not None
    await inject_fault(system, sending_user.gmail, kind="drop_connection")
    email = await compose_one(sending_user)
    await email_in_state(sending_user, email["id"], "unconfirmed")
    response = await sending_user.client.post(
        f"/v1/emails/{email['id']}/resolve", json={"resolution": "mark_as_sent"}
    )
    assert response.status_code == 200, response.text
    assert (response.json()["state"], response.json()["outcome_reason"]) == ("sent", "marked_sent_by_user")
    counts = await emulator_counts(system.emulator_url, sending_user.gmail)
    assert counts["total"] == 1  # the dropped answer's send had landed; nothing more was sent
