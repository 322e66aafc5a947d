"""Two users: neither can read, change, render or delete the other's templates (404, never 403)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.templates.helpers import User, create_template, render_batch


@pytest.fixture
async def owner_and_stranger(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> tuple[User, User, dict[str, Any]]:
    owner, stranger = new_user(), new_user()
    template = await create_template(client, owner)
    return owner, stranger, template


async def test_v1_routes_answer_404_to_another_user(
    client: httpx.AsyncClient, owner_and_stranger: tuple[User, User, dict[str, Any]]
) -> None:
    """Every v1 route on someone else's template is a 404, and the template is untouched."""
    owner, stranger, template = owner_and_stranger
    path = f"/v1/templates/{template['id']}"
    attempts = [
        client.get(path, headers=stranger.headers),
        client.patch(path, json={"name": "mine now"}, headers=stranger.headers),
        client.delete(path, headers=stranger.headers),
        client.get(f"{path}/variables", headers=stranger.headers),
        client.post(f"{path}/preview", json={"fields": {"name": "x"}}, headers=stranger.headers),
    ]
    for attempt in attempts:
        assert (await attempt).status_code == 404
    assert (await client.get(path, headers=owner.headers)).json() == template


async def test_lists_hold_only_the_callers_templates(
    client: httpx.AsyncClient, owner_and_stranger: tuple[User, User, dict[str, Any]]
) -> None:
    """The v1 list and the legacy list never show another user's templates."""
    owner, stranger, _ = owner_and_stranger
    assert (await client.get("/v1/templates", headers=stranger.headers)).json()["items"] == []
    legacy = await client.get("/api/templates/get-all-templates", headers=stranger.headers)
    assert legacy.json()["data"] == {"templates": []}
    assert len((await client.get("/v1/templates", headers=owner.headers)).json()["items"]) == 1


async def test_legacy_update_of_another_users_template_is_404(
    client: httpx.AsyncClient, owner_and_stranger: tuple[User, User, dict[str, Any]]
) -> None:
    """The legacy update names only the caller's templates."""
    owner, stranger, template = owner_and_stranger
    response = await client.patch(
        "/api/templates/update-template",
        json={"template_id": template["id"], "t_body": "stolen", "t_key": ""},
        headers=stranger.headers,
    )
    assert response.status_code == 404
    assert response.json()["success"] is False
    assert (await client.get(f"/v1/templates/{template['id']}", headers=owner.headers)).json()["version"] == 1


async def test_legacy_delete_skips_another_users_templates(
    client: httpx.AsyncClient, owner_and_stranger: tuple[User, User, dict[str, Any]]
) -> None:
    """The old server deleted by id for anyone; here only the caller's ids are deleted and reported."""
    owner, stranger, template = owner_and_stranger
    own = await create_template(client, stranger)
    response = await client.request(
        "DELETE", "/api/templates/delete-template", json=[template["id"], own["id"]], headers=stranger.headers
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"template_ids": [own["id"]]}
    assert (await client.get(f"/v1/templates/{template['id']}", headers=owner.headers)).status_code == 200


async def test_internal_routes_answer_404_for_the_wrong_user(
    client: httpx.AsyncClient,
    internal: dict[str, str],
    owner_and_stranger: tuple[User, User, dict[str, Any]],
) -> None:
    """A version read or render naming another user as the owner is a 404."""
    _, stranger, template = owner_and_stranger
    version = await client.get(
        f"/internal/templates/templates/{template['id']}/versions/1",
        params={"user_id": stranger.id},
        headers=internal,
    )
    assert version.status_code == 404
    rendered = await render_batch(client, internal, stranger, template["id"], 1, [{"name": "x"}])
    assert rendered.status_code == 404
