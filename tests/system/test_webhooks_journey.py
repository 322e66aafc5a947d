"""Signed webhooks of a 1,000-recipient campaign reach a receiver that was down for a minute:
every event exactly once, each verified with the ``standardwebhooks`` library, through the
gateway and the dispatcher's courier (in both topologies)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest

from tests.support import eventually, free_port, start_webhook_listener
from tests.system.harness import RunningSystem, User, connect_gmail, sign_up
from tests.system.test_journey import as_csv, raise_limits

pytestmark = [pytest.mark.system, pytest.mark.slow]

RECIPIENTS = 1000
DOWN_SECONDS = 60


async def _campaign(user: User) -> int:
    template = await user.client.post(
        "/v1/templates/", json={"name": "Hi", "subject": "Hi {{ name }}", "html": "<p>Hi</p>"}
    )
    assert template.status_code == 201, template.text
    created = await user.client.post(
        "/v1/campaigns/",
        json={
            "name": "Announced",
            "account_id": user.account_id,
            "template_id": template.json()["id"],
            "template_version": template.json()["version"],
        },
    )
    assert created.status_code == 201, created.text
    campaign_id: int = created.json()["id"]
    rows = [{"email": f"hook{i:04d}@example.org", "name": f"N{i}"} for i in range(RECIPIENTS)]
    uploaded = await user.client.put(
        f"/v1/campaigns/{campaign_id}/recipients", content=as_csv(rows), headers={"Content-Type": "text/csv"}
    )
    assert uploaded.status_code == 200, uploaded.text
    return campaign_id


async def test_every_event_of_a_campaign_arrives_once_after_the_receiver_was_down(
    system: RunningSystem,
) -> None:
    """1,000 message.sent + campaign.launched + campaign.completed, each delivered exactly once and
    verified, although the receiver refused every connection for the first minute."""
    user = await sign_up(system, "hooked")
    try:
        await connect_gmail(user, system.base_url)
        await raise_limits(system, user)
        port = free_port()
        created = await user.client.post(
            "/v1/webhooks",
            json={
                "url": f"http://127.0.0.1:{port}/events",
                "events": ["message.sent", "message.failed", "campaign.launched", "campaign.completed"],
            },
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()
        campaign_id = await _campaign(user)
        launched = await user.client.post(f"/v1/campaigns/{campaign_id}/launch", json={})
        assert launched.status_code == 200, launched.text
        down_since = time.monotonic()

        async def completed() -> bool:
            campaign = (await user.client.get(f"/v1/campaigns/{campaign_id}")).json()
            return campaign["state"] == "completed"

        await eventually(completed, timeout=120)

        async def attempted_while_down() -> bool:
            page = (
                await user.client.get(f"/v1/webhooks/{endpoint['id']}/deliveries", params={"limit": 200})
            ).json()
            return any(item["attempts"] for item in page["items"])

        await eventually(attempted_while_down, timeout=30)
        await asyncio.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_since)))  # the outage itself
        receiver = start_webhook_listener(port, endpoint["secret"])
        try:
            assert receiver.stdout is not None
            lines: list[str] = []

            async def all_arrived() -> bool:
                while len(lines) < RECIPIENTS + 2:
                    line = await asyncio.to_thread(receiver.stdout.readline)  # type: ignore[union-attr]
                    if not line:
                        return False
                    lines.append(line)
                return True

            await asyncio.wait_for(all_arrived(), timeout=180)
            # Once every delivery is recorded delivered, nothing more is posted: a duplicate would
            # have come before.
            await eventually(lambda: _all_delivered(user, endpoint["id"]), timeout=60)
        finally:
            receiver.terminate()
            rest, errors = receiver.communicate(timeout=30)
        lines += rest.splitlines(keepends=True)
        events = [line.split(" ", 2) for line in lines if line.strip()]
        ids = Counter(event_id for event_id, _, _ in events)
        assert set(ids.values()) == {1}, [event_id for event_id, n in ids.items() if n > 1][:5]
        kinds = Counter(kind for _, kind, _ in events)
        assert kinds == {"message.sent": RECIPIENTS, "campaign.launched": 1, "campaign.completed": 1}
        sent_ids = {json.loads(data)["message_id"] for _, kind, data in events if kind == "message.sent"}
        assert len(sent_ids) == RECIPIENTS
        assert "refused" not in errors  # every signature verified
    finally:
        await user.client.aclose()


async def _all_delivered(user: User, endpoint_id: int) -> bool:
    """Whether every delivery of the endpoint is delivered (all pages)."""
    cursor: str | None = None
    while True:
        params: dict[str, object] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await user.client.get(f"/v1/webhooks/{endpoint_id}/deliveries", params=params)).json()
        if any(item["state"] != "delivered" for item in page["items"]):
            return False
        cursor = page["next_cursor"]
        if cursor is None:
            return True


async def test_a_webhook_to_a_private_address_outside_the_allowlist_is_refused(system: RunningSystem) -> None:
    """10.x, 169.254.x and a loopback name the allowlist does not hold are refused with the reason."""
    user = await sign_up(system, "ssrf")
    try:
        for url in (
            "https://10.0.0.5/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/x",
        ):
            refused = await user.client.post("/v1/webhooks", json={"url": url, "events": ["message.sent"]})
            assert refused.status_code == 422, refused.text
            assert "url" in refused.json()["detail"]
    finally:
        await user.client.aclose()
