"""``/v1/templates/{id}/versions``: a template's saved versions, listed newest first and read in full."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.templates.helpers import User, create_template


async def _edited_three_times(client: httpx.AsyncClient, user: User) -> dict[str, Any]:
    created = await create_template(client, user, subject="One {{ a }}", html="<p>one {{ a }}</p>")
    for word in ("Two", "Three"):
        response = await client.patch(
            f"/v1/templates/{created['id']}",
            json={"subject": f"{word} {{{{ b }}}}", "html": f"<p>{word.lower()} {{{{ b }}}}</p>"},
            headers=user.headers,
        )
        assert response.status_code == 200, response.text
    return created


async def test_versions_are_listed_newest_first_with_the_current_one_marked(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """The list holds every version, newest first, with its subject; only the newest is current."""
    user = new_user()
    created = await _edited_three_times(client, user)
    response = await client.get(f"/v1/templates/{created['id']}/versions", headers=user.headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert [(item["version"], item["subject"], item["current"]) for item in page["items"]] == [
        (3, "Three {{ b }}", True),
        (2, "Two {{ b }}", False),
        (1, "One {{ a }}", False),
    ]
    assert all(item["created_at"] for item in page["items"])
    assert page["next_cursor"] is None


async def test_versions_page_with_a_cursor(client: httpx.AsyncClient, new_user: Callable[[], User]) -> None:
    """Pages of two follow each other through next_cursor, without gaps or repeats."""
    user = new_user()
    created = await _edited_three_times(client, user)
    path = f"/v1/templates/{created['id']}/versions"
    first = (await client.get(path, params={"limit": 2}, headers=user.headers)).json()
    assert [item["version"] for item in first["items"]] == [3, 2]
    second = (
        await client.get(path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=user.headers)
    ).json()
    assert [item["version"] for item in second["items"]] == [1]
    assert second["next_cursor"] is None


async def test_a_templates_list_cursor_is_refused_by_the_versions_list(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """A cursor of the templates list is not a cursor of a versions list: 400, not skipped rows."""
    user = new_user()
    for _ in range(2):
        created = await create_template(client, user)
    cursor = (await client.get("/v1/templates", params={"limit": 1}, headers=user.headers)).json()[
        "next_cursor"
    ]
    response = await client.get(
        f"/v1/templates/{created['id']}/versions", params={"cursor": cursor}, headers=user.headers
    )
    assert response.status_code == 400


async def test_an_old_version_reads_as_it_was_saved(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Version 1 answers its own content and fields after two edits, and is not current."""
    user = new_user()
    created = await _edited_three_times(client, user)
    response = await client.get(f"/v1/templates/{created['id']}/versions/1", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {key: body[key] for key in ("id", "version", "current", "subject", "html", "variables")} == {
        "id": created["id"],
        "version": 1,
        "current": False,
        "subject": "One {{ a }}",
        "html": "<p>one {{ a }}</p>",
        "variables": ["a"],
    }
    current = (await client.get(f"/v1/templates/{created['id']}/versions/3", headers=user.headers)).json()
    assert current["current"] is True
    assert current["subject"] == "Three {{ b }}"


async def test_an_unknown_version_is_404_naming_it(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Asking for version 9 of a template with one version is 404, saying which versions exist."""
    user = new_user()
    created = await create_template(client, user)
    response = await client.get(f"/v1/templates/{created['id']}/versions/9", headers=user.headers)
    assert response.status_code == 404
    assert "has no version 9" in response.json()["detail"]
    assert "1 to 1" in response.json()["detail"]


async def test_another_users_template_versions_are_404(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Neither the list nor a version of someone else's template is visible: 404 naming the template."""
    owner, stranger = new_user(), new_user()
    created = await create_template(client, owner)
    for path in (f"/v1/templates/{created['id']}/versions", f"/v1/templates/{created['id']}/versions/1"):
        response = await client.get(path, headers=stranger.headers)
        assert response.status_code == 404
        assert f"template {created['id']} does not exist" in response.json()["detail"]


async def test_a_deleted_templates_versions_are_404(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Once deleted, a template's versions are gone from the v1 API like the template itself."""
    user = new_user()
    created = await create_template(client, user)
    await client.delete(f"/v1/templates/{created['id']}", headers=user.headers)
    response = await client.get(f"/v1/templates/{created['id']}/versions", headers=user.headers)
    assert response.status_code == 404


async def test_versions_routes_are_documented(client: httpx.AsyncClient) -> None:
    """The OpenAPI document lists both routes with their answers, 404 included."""
    schema = (await client.get("/schema/templates/openapi.json")).json()
    paths = schema["paths"]
    listing = paths["/v1/templates/{template_id}/versions"]["get"]
    reading = paths["/v1/templates/{template_id}/versions/{version}"]["get"]
    assert {"200", "404"} <= set(listing["responses"])
    assert {"200", "404"} <= set(reading["responses"])
