"""Through the gateway, against the real services: Gmail's size limit at compose, empty cells of a
list, and a test of one row sent to the user's own mailbox."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import eventually
from tests.system.harness import PDF, RunningSystem, User, emulator_messages, header

pytestmark = pytest.mark.system

MiB = 1024 * 1024
TEMPLATE = {"name": "Intro", "subject": "Hi {{ name }}", "html": "<p>Hello {{ name }} at {{ company }}</p>"}
LIST = b"email,name,company\r\nada@example.org,Ada,Analytical\r\nbob@example.org,Bob,\r\n"


async def _campaign(user: User) -> dict[str, Any]:
    """A draft campaign of TEMPLATE with LIST uploaded."""
    response = await user.client.post("/v1/templates/", json=TEMPLATE)
    assert response.status_code == 201, response.text
    template = response.json()
    body = {
        "name": "Intro",
        "account_id": user.account_id,
        "template_id": template["id"],
        "template_version": template["version"],
    }
    response = await user.client.post("/v1/campaigns/", json=body)
    assert response.status_code == 201, response.text
    campaign: dict[str, Any] = response.json()
    response = await user.client.put(
        f"/v1/campaigns/{campaign['id']}/recipients", content=LIST, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    campaign["build"] = response.json()
    return campaign


async def test_an_email_above_gmails_limit_is_refused_at_compose(sending_user: User) -> None:
    """Three 9.5 MB uploads (over 35 MB in base64) are refused at compose with 422, naming both sizes."""
    ids = []
    for index in range(3):
        content = PDF + b"%" + bytes([65 + index]) * (int(9.5 * MiB) - len(PDF) - 1)
        response = await sending_user.client.post(
            "/v1/attachments/",
            files={"file": (f"part{index}.pdf", content, "application/pdf")},
            data={"kind": "other"},
            timeout=120,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    body = {
        "account_id": sending_user.account_id,
        "to": ["ada@example.org"],
        "subject": "Files",
        "text": "Hi",
    }
    response = await sending_user.client.post("/v1/emails/", json={**body, "attachment_ids": ids})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["size_bytes"] > problem["limit_bytes"] == 35 * MiB
    assert "Gmail's limit is 36,700,160 bytes (35 MB)" in problem["detail"]


async def test_an_empty_cell_is_reported_as_a_missing_field(sending_user: User) -> None:
    """Bob's empty company makes his row missing_fields ("Hello Bob at" is never sent)."""
    campaign = await _campaign(sending_user)
    assert campaign["build"] == {"rows": 2, "valid": 1, "problems": {"missing_fields": 1}}
    report = (await sending_user.client.get(f"/v1/campaigns/{campaign['id']}/report")).json()
    assert [(p["row"], p["detail"]) for p in report["problems"]] == [(2, "missing: company")]


async def test_a_test_of_a_row_arrives_in_the_users_own_mailbox(
    system: RunningSystem, sending_user: User
) -> None:
    """Row 1 of a draft, sent as a test, reaches the user's own Gmail address marked [Test]."""
    campaign = await _campaign(sending_user)
    response = await sending_user.client.post(f"/v1/campaigns/{campaign['id']}/rows/1/test")
    assert response.status_code == 201, response.text
    email_id = response.json()["id"]

    async def sent() -> bool:
        email = (await sending_user.client.get(f"/v1/emails/{email_id}")).json()
        return bool(email["state"] == "sent")

    await eventually(sent, timeout=30)
    assert sending_user.gmail is not None
    [delivered] = await emulator_messages(system.emulator_url, sending_user.gmail)
    assert (header(delivered, "To"), header(delivered, "Subject")) == (
        [sending_user.gmail],
        ["[Test] Hi Ada"],
    )
    progress = (await sending_user.client.get(f"/v1/campaigns/{campaign['id']}/progress")).json()
    assert progress["total"] == 0
