"""One-click unsubscribe and the suppression list, from the raw mail at the emulator back to the
next campaign, through the gateway (in both topologies)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support import eventually
from tests.system.harness import (
    RunningSystem,
    User,
    connect_gmail,
    emulator_messages,
    header,
    sign_up,
    upload_and_launch,
)

pytestmark = pytest.mark.system

HTML = '<p>Hi {{ name }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'


@pytest.fixture(scope="module")
async def sender(system: RunningSystem) -> AsyncIterator[User]:
    user = await sign_up(system, "compliance")
    await connect_gmail(user, system.base_url)
    yield user
    await user.client.aclose()


async def _template(user: User, html: str = HTML) -> dict[str, Any]:
    response = await user.client.post(
        "/v1/templates/", json={"name": "Hello", "subject": "Hi {{ name }}", "html": html}
    )
    assert response.status_code == 201, response.text
    template: dict[str, Any] = response.json()
    return template


async def _run_campaign(
    user: User, addresses: list[str], template: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Create, upload, launch and wait for the campaign to finish; its emails by address."""
    created = await user.client.post(
        "/v1/campaigns/",
        json={
            "name": "Outreach",
            "account_id": user.account_id,
            "template_id": template["id"],
            "template_version": template["version"],
        },
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    await upload_and_launch(user, campaign_id, addresses)

    async def finished() -> dict[str, dict[str, Any]] | None:
        campaign = (await user.client.get(f"/v1/campaigns/{campaign_id}")).json()
        if campaign["state"] != "completed":
            return None
        page = (
            await user.client.get("/v1/emails/", params={"campaign_id": campaign_id, "limit": 200})
        ).json()
        return {item["to"][0]: item for item in page["items"]}

    return await eventually(finished, timeout=60)


async def _delivered_to(system: RunningSystem, user: User, address: str) -> list[dict[str, Any]]:
    return [m for m in await emulator_messages(system.emulator_url, user.gmail or "") if address in m["to"]]


async def test_campaign_mail_unsubscribes_in_one_click_and_the_next_campaign_skips_the_address(
    system: RunningSystem, sender: User
) -> None:
    """The raw mail carries RFC 8058's two headers and a visible link; a POST to the header's URL
    (what Gmail's unsubscribe button does) suppresses the address, and the next campaign to it
    sends to everyone else."""
    template = await _template(sender)
    first = await _run_campaign(sender, ["ada@example.net", "bob@example.net"], template)
    assert {email["state"] for email in first.values()} == {"sent"}
    [mail] = await _delivered_to(system, sender, "ada@example.net")
    [link] = header(mail, "List-Unsubscribe")
    assert header(mail, "List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    url = link.strip("<>")
    assert url.startswith(f"{system.base_url}/v1/unsubscribe/")
    assert f'href="{url}"' in mail["html"]  # the same link, visible in the body

    async with httpx.AsyncClient(timeout=30) as mail_client:  # no session: Gmail's own POST
        page = await mail_client.get(url)
        assert page.status_code == 200
        assert "Unsubscribe" in page.text
        unsubscribed = await mail_client.post(
            url,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert unsubscribed.status_code == 200, unsubscribed.text
    listed = (await sender.client.get("/v1/suppressions")).json()["items"]
    assert [(entry["value"], entry["reason"]) for entry in listed] == [("ada@example.net", "unsubscribe")]

    second = await _run_campaign(sender, ["ada@example.net", "cy@example.net"], template)
    assert second["ada@example.net"]["state"] == "cancelled"
    assert second["ada@example.net"]["outcome_reason"] == "suppressed"
    assert second["cy@example.net"]["state"] == "sent"
    assert len(await _delivered_to(system, sender, "ada@example.net")) == 1


async def test_a_suppressed_domain_blocks_all_its_addresses_and_personal_mail_has_no_list_headers(
    system: RunningSystem, sender: User
) -> None:
    """Every address of a suppressed domain is skipped; a one-off email carries no List-Unsubscribe."""
    added = await sender.client.post("/v1/suppressions", json={"domain": "blocked.example"})
    assert added.status_code == 201, added.text
    template = await _template(sender)
    emails = await _run_campaign(
        sender, ["one@blocked.example", "two@blocked.example", "ok@fine.example"], template
    )
    assert {a: e["state"] for a, e in emails.items()} == {
        "one@blocked.example": "cancelled",
        "two@blocked.example": "cancelled",
        "ok@fine.example": "sent",
    }
    personal = await sender.client.post(
        "/v1/emails/",
        json={
            "account_id": sender.account_id,
            "to": ["pal@fine.example"],
            "subject": "Lunch?",
            "html": "<p>Hi</p>",
        },
    )
    assert personal.status_code == 201, personal.text

    async def delivered() -> list[dict[str, Any]] | None:
        return await _delivered_to(system, sender, "pal@fine.example") or None

    [mail] = await eventually(delivered, timeout=30)
    assert header(mail, "List-Unsubscribe") == []
    assert header(mail, "List-Unsubscribe-Post") == []
