"""Empty cells of a recipient list, as the queue sends them to render-batch: missing unless the
template gives a default or tests the field itself."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.templates.helpers import User, create_template, render_batch


async def test_an_empty_cell_is_a_missing_field_in_a_batch(
    client: httpx.AsyncClient, new_user: Callable[[], User], internal: dict[str, str]
) -> None:
    """A row with an empty company cell fails as missing_fields naming it; the full row renders."""
    user = new_user()
    created = await create_template(
        client, user, subject="Hi {{ name }}", html="Hello {{ name }} at {{ company }}"
    )
    rows = [{"name": "Ada", "company": "Analytical"}, {"name": "Bob", "company": ""}]
    results = (await render_batch(client, internal, user, created["id"], 1, rows)).json()["results"]
    assert (results[0]["ok"], results[0]["html"]) == (True, "Hello Ada at Analytical")
    assert (results[1]["ok"], results[1]["error"], results[1]["missing"]) == (
        False,
        "missing_fields",
        ["company"],
    )


async def test_an_empty_cell_with_a_default_renders_the_default(
    client: httpx.AsyncClient, new_user: Callable[[], User], internal: dict[str, str]
) -> None:
    """`{{ company | default("your team") }}` fills in an empty cell."""
    user = new_user()
    created = await create_template(
        client, user, subject="Hi {{ name }}", html='Hello {{ name }} at {{ company | default("your team") }}'
    )
    rows = [{"name": "Bob", "company": " "}]
    [result] = (await render_batch(client, internal, user, created["id"], 1, rows)).json()["results"]
    assert (result["ok"], result["html"]) == (True, "Hello Bob at your team")


async def test_the_preview_names_an_empty_field_as_missing(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """A preview with an empty field answers 422 naming it, saying that a blank counts as missing."""
    user = new_user()
    created = await create_template(client, user, subject="Hi {{ name }}", html="<p>{{ name }}</p>")
    response = await client.post(
        f"/v1/templates/{created['id']}/preview", json={"fields": {"name": ""}}, headers=user.headers
    )
    assert response.status_code == 422, response.text
    assert "missing fields: name" in response.json()["detail"]
    assert "a blank value counts as missing" in response.json()["detail"]
