"""Gmail's message size limit, held at compose, at a campaign's creation and on each row of its list."""

from __future__ import annotations

import binascii
from typing import Any

import pytest
from sqlalchemy import func, select

from mailmerger_queue.emails.message_size import encoded_attachment_size
from mailmerger_queue.models import messages
from mailmerger_queue.settings import QueueSettings
from mailmerger_shared.db import transaction
from tests.queue.world import World

MiB = 1024 * 1024


def _attachments(world: World, user: int, *sizes: int) -> list[int]:
    ids = [world.new_id() for _ in sizes]
    for attachment_id, size in zip(ids, sizes, strict=True):
        world.fake.add_attachment(user, attachment_id, size=size)
    return ids


async def _ledger_size(world: World) -> int:
    assert world.infra.sessions is not None
    async with transaction(world.infra.sessions) as session:
        return int((await session.execute(select(func.count()).select_from(messages))).scalar_one())


@pytest.mark.parametrize("size", [0, 1, 2, 3, 56, 57, 58, 100, 1000, 4096, 123_457])
def test_an_attachment_counts_as_its_base64_body(size: int) -> None:
    """An attachment takes its base64 in 76-character lines with CRLF, as the sender writes it."""
    encoded = binascii.b2a_base64(bytes(size), newline=False)
    lines = [encoded[i : i + 76] for i in range(0, len(encoded), 76)]
    assert encoded_attachment_size(size) == sum(len(line) + 2 for line in lines)


async def test_compose_refuses_a_message_above_gmails_limit(world: World, settings: QueueSettings) -> None:
    """Three 9 MB attachments (27 MB, over 35 MB in base64) are refused at compose, naming both sizes."""
    user, account = await world.user_with_account()
    ids = _attachments(world, user, 9 * MiB, 9 * MiB, 9 * MiB)
    body = {"account_id": account, "to": ["ada@example.com"], "subject": "CV", "html": "<p>Hi</p>"}
    response = await world.client.post(
        "/v1/emails", json={**body, "attachment_ids": ids}, headers=world.auth(user)
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    limit = settings.compose.max_message_bytes
    assert (problem["limit_bytes"], problem["size_bytes"] > limit) == (limit, True)
    assert f"{problem['size_bytes']:,} bytes" in problem["detail"]
    assert f"Gmail's limit is {limit:,} bytes (35 MB)" in problem["detail"]
    assert await _ledger_size(world) == 0


async def test_compose_accepts_a_message_within_gmails_limit(world: World) -> None:
    """Attachments whose base64 still fits in the limit are accepted."""
    user, account = await world.user_with_account()
    ids = _attachments(world, user, 9 * MiB, 9 * MiB, 7 * MiB)
    email = await world.compose(user, account, attachment_ids=ids)
    assert email["attachment_ids"] == ids


async def test_compose_counts_the_bodies_too(world: World, settings: QueueSettings) -> None:
    """A body that tips attachments just under the limit over it is refused."""
    user, account = await world.user_with_account()
    limit = settings.compose.max_message_bytes
    room = limit - encoded_attachment_size(25 * MiB)
    assert 0 < room < MiB
    [attachment] = _attachments(world, user, 25 * MiB)
    body = {"account_id": account, "to": ["ada@example.com"], "subject": "CV", "attachment_ids": [attachment]}
    response = await world.client.post(
        "/v1/emails", json={**body, "text": "x" * room}, headers=world.auth(user)
    )
    assert response.status_code == 422, response.text


async def _create_campaign(world: World, user: int, account: int, **fields: Any) -> Any:
    world.fake.add_template(user, 5, subject="Hi {{name}}", html="<p>Dear {{name}}</p>")
    body = {"name": "Big", "account_id": account, "template_id": 5, "template_version": 1, **fields}
    return await world.client.post("/v1/campaigns", json=body, headers=world.auth(user))


async def test_a_campaign_whose_own_attachments_are_too_large_is_refused(
    world: World, settings: QueueSettings
) -> None:
    """Attachments every message of a campaign carries are held to the limit when it is created."""
    user, account = await world.user_with_account()
    ids = _attachments(world, user, 10 * MiB, 10 * MiB, 10 * MiB)
    response = await _create_campaign(world, user, account, attachment_ids=ids)
    assert response.status_code == 422, response.text
    assert response.json()["limit_bytes"] == settings.compose.max_message_bytes
    assert "the campaign's attachments alone" in response.json()["detail"]


async def test_a_row_whose_message_is_too_large_is_reported(world: World, settings: QueueSettings) -> None:
    """A row whose own attachments, with the campaign's, pass the limit is a message_too_large problem."""
    user, account = await world.user_with_account()
    shared = _attachments(world, user, 9 * MiB)
    small, big, bigger = _attachments(world, user, 1 * MiB, 9 * MiB, 9 * MiB)
    response = await _create_campaign(world, user, account, attachment_ids=shared, attachments_column="files")
    assert response.status_code == 201, response.text
    campaign = response.json()
    csv = f"email,name,files\r\na@example.com,A,{small}\r\nb@example.com,B,{big};{bigger}\r\n"
    built = await world.client.put(
        f"/v1/campaigns/{campaign['id']}/recipients",
        content=csv.encode(),
        headers={**world.auth(user), "content-type": "text/csv"},
    )
    assert built.json() == {"rows": 2, "valid": 1, "problems": {"message_too_large": 1}}
    report = (
        await world.client.get(f"/v1/campaigns/{campaign['id']}/report", headers=world.auth(user))
    ).json()
    [problem] = report["problems"]
    assert (problem["row"], problem["problem"]) == (2, "message_too_large")
    assert f"Gmail's limit is {settings.compose.max_message_bytes:,} bytes" in problem["detail"]
