"""UserDeleted purges the user's templates, versions and cache keys, and nobody else's."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import redis.asyncio as aioredis
from litestar import Litestar
from sqlalchemy import func, select

from mailmerger_shared import contracts as c
from mailmerger_shared.db import transaction
from mailmerger_templates import models
from mailmerger_templates.worker import purge_deleted_users
from tests.support import eventually
from tests.templates.helpers import User, create_template


async def count_versions(app: Litestar, template_id: int) -> int:
    versions = models.template_versions
    async with transaction(app.state.infra.sessions) as session:
        query = select(func.count()).where(versions.c.template_id == template_id)
        return int((await session.execute(query)).scalar_one())


async def test_user_deleted_event_purges_the_users_templates(
    client: httpx.AsyncClient,
    new_user: Callable[[], User],
    internal: dict[str, str],
    templates_app: Litestar,
    redis_client: aioredis.Redis,
    redis_prefix: str,
) -> None:
    """After UserDeleted is published, every version of the user's templates and their cache keys are gone."""
    user, other = new_user(), new_user()
    template = await create_template(client, user)
    await client.patch(f"/v1/templates/{template['id']}", json={"name": "v2"}, headers=user.headers)
    await client.delete(f"/v1/templates/{(await create_template(client, user))['id']}", headers=user.headers)
    kept = await create_template(client, other)
    await client.get("/v1/templates", headers=user.headers)  # cached
    user_keys = f"{redis_prefix}templates:{user.id}:*"
    assert await redis_client.keys(user_keys)

    await templates_app.state.infra.publisher.publish(c.UserDeleted(user_id=user.id))

    async def purged() -> bool:
        return await count_versions(templates_app, template["id"]) == 0 and not await redis_client.keys(
            user_keys
        )

    await eventually(purged)
    version = await client.get(
        f"/internal/templates/templates/{template['id']}/versions/1",
        params={"user_id": user.id},
        headers=internal,
    )
    assert version.status_code == 404
    assert (await client.get("/v1/templates", headers=user.headers)).json()["items"] == []
    assert (await client.get(f"/v1/templates/{kept['id']}", headers=other.headers)).status_code == 200


async def test_purging_twice_is_harmless(
    client: httpx.AsyncClient, new_user: Callable[[], User], templates_app: Litestar
) -> None:
    """A redelivered UserDeleted finds nothing left and succeeds."""
    user = new_user()
    template = await create_template(client, user)
    handle = purge_deleted_users(templates_app.state.infra.sessions, templates_app.state.template_cache)
    event = c.UserDeleted(user_id=user.id)
    envelope = c.Envelope.new(event.TAG)
    await handle(event, envelope)
    await handle(event, envelope)
    assert await count_versions(templates_app, template["id"]) == 0
