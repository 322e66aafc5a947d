"""Internal routes for the queue service: versions stay readable and renderable as they were queued."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from mailmerger_shared.web.internal import caller_headers
from mailmerger_templates.settings import TemplatesSettings
from tests.templates.helpers import User, create_template, render_batch


async def test_version_info_has_the_versions_content(
    client: httpx.AsyncClient, new_user: Callable[[], User], internal: dict[str, str]
) -> None:
    """The internal read answers subject, bodies and fields of the version asked for."""
    user = new_user()
    created = await create_template(client, user, subject="Hi {{ a }}", html="{{ b }}", text="{{ c }}")
    response = await client.get(
        f"/internal/templates/templates/{created['id']}/versions/1",
        params={"user_id": user.id},
        headers=internal,
    )
    assert response.status_code == 200
    assert response.json() == {
        "template_id": created["id"],
        "version": 1,
        "subject": "Hi {{ a }}",
        "html": "{{ b }}",
        "text": "{{ c }}",
        "variables": ["a", "b", "c"],
    }


async def test_an_update_leaves_the_previous_version_renderable_as_it_was(
    client: httpx.AsyncClient, new_user: Callable[[], User], internal: dict[str, str]
) -> None:
    """After an edit, version 1 still reads and renders its old content, version 2 the new one."""
    user = new_user()
    created = await create_template(client, user, subject="Old {{ name }}", html="<p>old {{ name }}</p>")
    await client.patch(
        f"/v1/templates/{created['id']}",
        json={"subject": "New {{ name }}", "html": "<p>new {{ name }}</p>"},
        headers=user.headers,
    )
    old = await client.get(
        f"/internal/templates/templates/{created['id']}/versions/1",
        params={"user_id": user.id},
        headers=internal,
    )
    assert old.json()["subject"] == "Old {{ name }}"
    for version, expected in ((1, "<p>old Ada</p>"), (2, "<p>new Ada</p>")):
        response = await render_batch(client, internal, user, created["id"], version, [{"name": "Ada"}])
        assert response.json()["results"][0]["html"] == expected


async def test_a_deleted_template_still_renders_what_was_queued(
    client: httpx.AsyncClient, new_user: Callable[[], User], internal: dict[str, str]
) -> None:
    """Deleting hides a template from its owner, not from mail already queued with it."""
    user = new_user()
    created = await create_template(client, user)
    await client.delete(f"/v1/templates/{created['id']}", headers=user.headers)
    version = await client.get(
        f"/internal/templates/templates/{created['id']}/versions/1",
        params={"user_id": user.id},
        headers=internal,
    )
    assert version.status_code == 200
    rendered = await render_batch(client, internal, user, created["id"], 1, [{"name": "Ada"}])
    assert rendered.json()["results"][0]["html"] == "<p>Hello Ada</p>"


async def test_a_version_that_does_not_exist_is_404(
    client: httpx.AsyncClient, new_user: Callable[[], User], internal: dict[str, str]
) -> None:
    """Asking for a version beyond the latest is a 404, not an empty answer."""
    user = new_user()
    created = await create_template(client, user)
    response = await render_batch(client, internal, user, created["id"], 2, [{"name": "Ada"}])
    assert response.status_code == 404


async def test_render_batch_answers_each_row_in_order(
    client: httpx.AsyncClient, new_user: Callable[[], User], internal: dict[str, str]
) -> None:
    """One result per row, in the order given; a failing row carries its error, the rest render."""
    user = new_user()
    created = await create_template(client, user, subject="To {{ name }}", html="{{ 100 // n }}")
    rows: list[dict[str, object]] = [{"name": "A", "n": 4}, {"n": 1}, {"name": "C", "n": 0}]
    results = (await render_batch(client, internal, user, created["id"], 1, rows)).json()["results"]
    assert [(r["ok"], r["subject"], r["html"]) for r in results] == [
        (True, "To A", "25"),
        (False, None, None),
        (False, None, None),
    ]
    assert (results[1]["error"], results[1]["missing"]) == ("missing_fields", ["name"])
    assert results[2]["error"] == "render_failed"
    assert "ZeroDivisionError" in results[2]["detail"]


async def test_render_batch_refuses_too_many_rows(
    client: httpx.AsyncClient,
    new_user: Callable[[], User],
    internal: dict[str, str],
    templates_settings: TemplatesSettings,
) -> None:
    """A batch over the row limit is a 413 that says to split it."""
    user = new_user()
    created = await create_template(client, user)
    rows = [{"name": "x"}] * (templates_settings.templates.max_batch_rows + 1)
    response = await render_batch(client, internal, user, created["id"], 1, rows)
    assert response.status_code == 413
    assert "split it" in response.json()["detail"]


async def test_internal_routes_need_the_service_credential(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Without the queue's credential the internal routes answer 401 (user token or not), and
    another service is 403: only the queue renders."""
    user = new_user()
    created = await create_template(client, user)
    path = f"/internal/templates/templates/{created['id']}/versions/1"
    for headers in ({}, caller_headers("queue", "guess"), user.headers):
        assert (await client.get(path, params={"user_id": user.id}, headers=headers)).status_code == 401
    response = await client.get(path, params={"user_id": user.id}, headers=caller_headers("sender", "guess"))
    assert response.status_code == 403


async def test_render_batch_of_numbers_out_of_range_is_404(
    client: httpx.AsyncClient, new_user: Callable[[], User], internal: dict[str, str]
) -> None:
    """A request naming a user, template or version no column can hold finds nothing, cleanly."""
    user = new_user()
    created = await create_template(client, user)
    huge = User(99_999_999_999_999_999_999, user.headers)
    assert (await render_batch(client, internal, huge, created["id"], 1, [])).status_code == 404
    assert (await render_batch(client, internal, user, created["id"], 2**31, [])).status_code == 404
