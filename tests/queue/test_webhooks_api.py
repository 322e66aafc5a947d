"""``/v1/webhooks`` over HTTP: registration with its checks, reads, changes, deliveries, ownership."""

from __future__ import annotations

import itertools

import httpx
import pytest

from tests.queue.world import World

# A public address written as a literal: registration checks it without DNS.
PUBLIC_URL = "https://93.184.215.14/hooks/mailmerger"
_users = itertools.count(800_000)


async def register(world: World, user_id: int, **body: object) -> httpx.Response:
    payload = {"url": PUBLIC_URL, "events": ["message.sent", "campaign.completed"], **body}
    return await world.client.post("/v1/webhooks", json=payload, headers=world.auth(user_id))


async def test_an_endpoint_is_registered_and_its_secret_shown_only_then(world: World) -> None:
    """201 with a whsec_ secret; reading it back never shows the secret again."""
    user = next(_users)
    created = await register(world, user, description="CRM")
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert (body["url"], body["events"], body["enabled"]) == (
        PUBLIC_URL,
        ["message.sent", "campaign.completed"],
        True,
    )

    one = await world.client.get(f"/v1/webhooks/{body['id']}", headers=world.auth(user))
    listed = await world.client.get("/v1/webhooks", headers=world.auth(user))
    assert one.status_code == 200
    assert "secret" not in one.json()
    assert [e["id"] for e in listed.json()] == [body["id"]]
    assert "secret" not in listed.json()[0]


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/hooks", "https://10.0.0.1/hooks", "https://169.254.169.254/latest/meta-data"]
)
async def test_a_private_target_is_refused_with_a_422(world: World, url: str) -> None:
    """Loopback, private and link-local targets are refused at registration (no allowlist here)."""
    answer = await register(world, next(_users), url=url)
    assert answer.status_code == 422, answer.text
    assert "private, loopback or link-local" in answer.json()["detail"]


async def test_unknown_events_are_refused_saying_which_exist(world: World) -> None:
    """An unknown event type is a 422 naming the known ones."""
    answer = await register(world, next(_users), events=["message.opened"])
    assert answer.status_code == 422, answer.text
    assert "message.sent" in answer.json()["detail"]


async def test_an_endpoint_is_changed_disabled_and_deleted(world: World) -> None:
    """PATCH changes only what it names; DELETE removes the endpoint (then 404)."""
    user = next(_users)
    endpoint = (await register(world, user)).json()["id"]
    path = f"/v1/webhooks/{endpoint}"
    changed = await world.client.patch(
        path, json={"events": ["campaign.launched"], "enabled": False}, headers=world.auth(user)
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["events"], changed.json()["enabled"], changed.json()["url"]) == (
        ["campaign.launched"],
        False,
        PUBLIC_URL,
    )
    refused = await world.client.post(f"{path}/test", headers=world.auth(user))
    assert refused.status_code == 409
    assert (await world.client.delete(path, headers=world.auth(user))).status_code == 204
    assert (await world.client.get(path, headers=world.auth(user))).status_code == 404


async def test_a_test_event_is_listed_among_the_deliveries(world: World) -> None:
    """POST …/test stages a webhook.test delivery, listed newest first, and replayable."""
    user = next(_users)
    endpoint = (await register(world, user)).json()["id"]
    staged = await world.client.post(f"/v1/webhooks/{endpoint}/test", headers=world.auth(user))
    assert staged.status_code == 202, staged.text
    assert (staged.json()["event_type"], staged.json()["state"]) == ("webhook.test", "pending")
    assert staged.json()["event_id"].startswith("msg_")

    page = await world.client.get(f"/v1/webhooks/{endpoint}/deliveries", headers=world.auth(user))
    assert page.status_code == 200, page.text
    assert [d["id"] for d in page.json()["items"]] == [staged.json()["id"]]
    assert page.json()["next_cursor"] is None
    replay = await world.client.post(
        f"/v1/webhooks/{endpoint}/deliveries/{staged.json()['id']}/replay", headers=world.auth(user)
    )
    assert replay.status_code == 202, replay.text
    assert replay.json()["event_id"] == staged.json()["event_id"]


async def test_another_users_endpoint_is_a_404_everywhere(world: World) -> None:
    """Reading, changing, deleting, testing, listing or replaying another user's endpoint: 404."""
    owner, stranger = next(_users), next(_users)
    endpoint = (await register(world, owner)).json()["id"]
    delivery = (await world.client.post(f"/v1/webhooks/{endpoint}/test", headers=world.auth(owner))).json()[
        "id"
    ]
    base = f"/v1/webhooks/{endpoint}"
    auth = world.auth(stranger)
    answers = [
        await world.client.get(base, headers=auth),
        await world.client.patch(base, json={"description": "mine"}, headers=auth),
        await world.client.delete(base, headers=auth),
        await world.client.post(f"{base}/rotate-secret", headers=auth),
        await world.client.post(f"{base}/test", headers=auth),
        await world.client.get(f"{base}/deliveries", headers=auth),
        await world.client.post(f"{base}/deliveries/{delivery}/replay", headers=auth),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers)
    assert (await world.client.get("/v1/webhooks", headers=auth)).json() == []
    assert (await world.client.get(base, headers=world.auth(owner))).status_code == 200
