"""The v1 API: create, list, read, update, delete, placeholders, validation and preview."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from tests.templates.helpers import User, create_template, problem_messages


async def test_create_returns_version_one_with_its_fields(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """A created template is version 1 and lists the fields it reads, required ones apart."""
    user = new_user()
    created = await create_template(
        client,
        user,
        name="Intro",
        description="first touch",
        subject="Hello {{ first_name }}",
        html="<p>{{ company }}</p>{{ ps | default('') }}",
        text="{{ company }}",
    )
    assert created["version"] == 1
    assert (created["name"], created["description"], created["text"]) == (
        "Intro",
        "first touch",
        "{{ company }}",
    )
    assert created["variables"] == ["company", "first_name", "ps"]
    assert created["required_fields"] == ["company", "first_name"]


async def test_get_returns_the_current_version(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """GET by id answers the template as last saved."""
    user = new_user()
    created = await create_template(client, user)
    response = await client.get(f"/v1/templates/{created['id']}", headers=user.headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == created


async def test_update_saves_the_next_version_and_keeps_unchanged_fields(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """PATCH changes only the fields given and bumps the version."""
    user = new_user()
    created = await create_template(client, user, text="plain {{ name }}")
    response = await client.patch(
        f"/v1/templates/{created['id']}",
        json={"html": "<b>{{ name }} at {{ company }}</b>"},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["version"] == 2
    assert (updated["subject"], updated["text"]) == (created["subject"], "plain {{ name }}")
    assert updated["variables"] == ["company", "name"]


async def test_update_with_null_text_removes_the_text_part(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """``"text": null`` removes the plain-text body (omitting it keeps it)."""
    user = new_user()
    created = await create_template(client, user, text="plain")
    response = await client.patch(f"/v1/templates/{created['id']}", json={"text": None}, headers=user.headers)
    assert response.json()["text"] is None


async def test_concurrent_updates_each_build_a_new_version(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Simultaneous edits are serialised: every one gets its own version, none is lost or refused."""
    user = new_user()
    created = await create_template(client, user)
    responses = await asyncio.gather(
        *(
            client.patch(f"/v1/templates/{created['id']}", json={"name": f"edit {n}"}, headers=user.headers)
            for n in range(6)
        )
    )
    assert sorted(response.json()["version"] for response in responses) == [2, 3, 4, 5, 6, 7]


async def test_delete_hides_the_template(client: httpx.AsyncClient, new_user: Callable[[], User]) -> None:
    """A deleted template is 204 once, then 404 to every route, and gone from the list."""
    user = new_user()
    created = await create_template(client, user)
    path = f"/v1/templates/{created['id']}"
    assert (await client.delete(path, headers=user.headers)).status_code == 204
    assert (await client.delete(path, headers=user.headers)).status_code == 404
    assert (await client.get(path, headers=user.headers)).status_code == 404
    assert (await client.patch(path, json={"name": "x"}, headers=user.headers)).status_code == 404
    assert (await client.get("/v1/templates", headers=user.headers)).json()["items"] == []


async def test_list_pages_newest_first_with_a_cursor(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Pages hold ``limit`` templates, newest first; next_cursor leads to the next page, null at the end."""
    user = new_user()
    ids = [(await create_template(client, user, name=f"t{n}"))["id"] for n in range(5)]
    seen: list[int] = []
    cursor = None
    for _ in range(3):
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/templates", params=params, headers=user.headers)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert seen == ids[::-1]
    assert cursor is None


async def test_list_searches_names_case_insensitively(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """``q`` matches any part of the name, in any case; % and _ are plain characters."""
    user = new_user()
    for name in ("Spring Offer", "offer 100%", "Newsletter"):
        await create_template(client, user, name=name)

    async def names(query: str) -> list[str]:
        page = (await client.get("/v1/templates", params={"q": query}, headers=user.headers)).json()
        return [item["name"] for item in page["items"]]

    assert await names("OFFER") == ["offer 100%", "Spring Offer"]
    assert await names("100%") == ["offer 100%"]
    assert await names("%") == ["offer 100%"]


async def test_list_refuses_a_cursor_it_did_not_issue(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """A forged cursor is a 400 that says to pass next_cursor unchanged."""
    response = await client.get("/v1/templates", params={"cursor": "bm9wZQ"}, headers=new_user().headers)
    assert response.status_code == 400
    assert "next_cursor" in response.json()["detail"]


async def test_list_limit_is_bounded(client: httpx.AsyncClient, new_user: Callable[[], User]) -> None:
    """A page size over 100 is refused rather than silently clamped."""
    response = await client.get("/v1/templates", params={"limit": 1000}, headers=new_user().headers)
    assert response.status_code == 400


async def test_invalid_syntax_is_422_with_part_line_and_column(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Every problem of every part is listed with where it is and what to change."""
    response = await client.post(
        "/v1/templates",
        json={
            "name": "x",
            "subject": "Hi {{ name }",
            "html": "<p>\n{{ first name }}</p>",
            "text": "{% if a %}",
        },
        headers=new_user().headers,
    )
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert [(p["part"], p["line"]) for p in problems] == [("subject", 1), ("html", 2), ("text", 1)]
    assert problems[1]["column"] == 10  # at "name"
    assert "endif" in problems[2]["message"]


async def test_oversized_template_is_413_with_the_limit(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """A template over the engine's size limit is refused before compiling, naming the limit."""
    response = await client.post(
        "/v1/templates",
        json={"name": "big", "subject": "s", "html": "x" * 300_000},
        headers=new_user().headers,
    )
    assert response.status_code == 413
    body = response.json()
    assert body["limit_bytes"] == 256 * 1024
    assert "shorten it" in body["detail"]


async def test_unknown_fields_are_refused_by_name(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """A misspelt field is a 400 naming it, not silently dropped (create and update)."""
    user = new_user()
    response = await client.post(
        "/v1/templates", json={"name": "x", "subject": "s", "html": "h", "body": "h"}, headers=user.headers
    )
    assert response.status_code == 400
    assert "unknown field `body`" in response.text
    created = await create_template(client, user)
    response = await client.patch(f"/v1/templates/{created['id']}", json={"htm": "x"}, headers=user.headers)
    assert response.status_code == 400
    assert "unknown field `htm`" in response.text


async def test_an_empty_name_is_refused(client: httpx.AsyncClient, new_user: Callable[[], User]) -> None:
    """Templates must have a name to be listed by."""
    response = await client.post(
        "/v1/templates", json={"name": "", "subject": "s", "html": "h"}, headers=new_user().headers
    )
    assert response.status_code == 400
    assert "name" in response.text


async def test_variables_lists_the_placeholders(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """GET variables names each field once, sorted, and which are required."""
    user = new_user()
    created = await create_template(
        client, user, subject="{{ b }}", html="{% for i in items %}{{ i }}{% endfor %}{{ a | default('') }}"
    )
    response = await client.get(f"/v1/templates/{created['id']}/variables", headers=user.headers)
    assert response.json() == {
        "template_id": created["id"],
        "version": 1,
        "variables": ["a", "b", "items"],
        "required_fields": ["b", "items"],
    }


async def test_validate_accepts_a_valid_template(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """A valid source is 200 with the fields it reads; nothing is saved."""
    user = new_user()
    response = await client.post(
        "/v1/templates/validate", json={"subject": "{{ s }}", "html": "{{ h }}"}, headers=user.headers
    )
    assert response.status_code == 200
    assert response.json() == {"valid": True, "variables": ["h", "s"], "required_fields": ["h", "s"]}
    assert (await client.get("/v1/templates", headers=user.headers)).json()["items"] == []


async def test_validate_lists_problems(client: httpx.AsyncClient, new_user: Callable[[], User]) -> None:
    """An invalid source is 422 with each problem's part, line and column."""
    response = await client.post(
        "/v1/templates/validate", json={"subject": "ok", "html": "a\nb {{ x y }}"}, headers=new_user().headers
    )
    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert (problem["part"], problem["line"], problem["column"]) == ("html", 2, 8)
    assert "check the {{ … }}" in problem_messages(response)


async def test_preview_renders_one_row(client: httpx.AsyncClient, new_user: Callable[[], User]) -> None:
    """Preview fills the current version in for the row given, escaping HTML in the body only."""
    user = new_user()
    created = await create_template(
        client, user, subject="Hi {{ name }}", html="<p>{{ name }}</p>", text="{{ name }}"
    )
    response = await client.post(
        f"/v1/templates/{created['id']}/preview", json={"fields": {"name": "A&B"}}, headers=user.headers
    )
    assert response.status_code == 200
    assert response.json() == {"subject": "Hi A&B", "html": "<p>A&amp;B</p>", "text": "A&B"}


async def test_preview_names_every_missing_field(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """A row lacking fields is 422 listing all of them and how to make one optional."""
    user = new_user()
    created = await create_template(client, user, subject="{{ a }}", html="{{ b }}{{ c }}")
    response = await client.post(
        f"/v1/templates/{created['id']}/preview", json={"fields": {"b": 1}}, headers=user.headers
    )
    assert response.status_code == 422
    body = response.json()
    assert (body["error"], body["missing"]) == ("missing_fields", ["a", "c"])
    assert "default(" in body["detail"]


async def test_preview_inserts_values_literally(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Template syntax inside a value is printed, never evaluated."""
    user = new_user()
    created = await create_template(client, user, subject="s", html="{{ note }}")
    note = "{{ 7 * 7 }}{% for i in range(3) %}x{% endfor %}"
    response = await client.post(
        f"/v1/templates/{created['id']}/preview", json={"fields": {"note": note}}, headers=user.headers
    )
    assert response.json()["html"] == note


async def test_preview_body_must_hold_fields(client: httpx.AsyncClient, new_user: Callable[[], User]) -> None:
    """A preview without ``fields`` is a 400 that names it."""
    user = new_user()
    created = await create_template(client, user)
    response = await client.post(
        f"/v1/templates/{created['id']}/preview", json={"name": "x"}, headers=user.headers
    )
    assert response.status_code == 400


async def test_routes_need_a_user_token(client: httpx.AsyncClient) -> None:
    """Without a bearer token the API answers 401."""
    assert (await client.get("/v1/templates")).status_code == 401


async def test_an_id_beyond_the_database_range_is_a_400(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Ids that cannot exist (zero, negative, past 64 bits) are refused as bad input, not a server error."""
    user = new_user()
    for template_id in ("0", "-5", "99999999999999999999"):
        response = await client.get(f"/v1/templates/{template_id}", headers=user.headers)
        assert response.status_code == 400
        assert "template_id" in response.text
