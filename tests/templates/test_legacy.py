"""The legacy client's /api/templates routes: its shapes, its envelope, real status codes."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import msgspec
from litestar import Litestar

from tests.templates.helpers import User, counting_statements, create_template


async def add(client: httpx.AsyncClient, user: User, t_body: str, t_key: str) -> httpx.Response:
    return await client.post(
        "/api/templates/add-template", json={"t_body": t_body, "t_key": t_key}, headers=user.headers
    )


async def test_add_then_list_in_the_legacy_shape(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """add-template answers 201 and the id; get-all-templates lists {template_id, uid, t_body, t_key}."""
    user = new_user()
    added = await add(client, user, "<p>Hi {{name}} from {{company}}</p>", "name, company")
    assert added.status_code == 201
    assert added.json()["success"] is True
    template_id = added.json()["data"]["template_id"]
    listed = await client.get("/api/templates/get-all-templates", headers=user.headers)
    assert listed.status_code == 200
    assert listed.json() == {
        "success": True,
        "status_code": 200,
        "message": "templates",
        "data": {
            "templates": [
                {
                    "template_id": template_id,
                    "uid": user.id,
                    "t_body": "<p>Hi {{name}} from {{company}}</p>",
                    "t_key": "company,name",
                }
            ]
        },
    }


async def test_a_legacy_template_is_named_and_subjected_after_its_id(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """In v1, a template from the legacy client is "Template <id>", which is also its subject."""
    user = new_user()
    template_id = (await add(client, user, "Hello", "")).json()["data"]["template_id"]
    template = (await client.get(f"/v1/templates/{template_id}", headers=user.headers)).json()
    assert (template["name"], template["subject"], template["html"]) == (
        f"Template {template_id}",
        f"Template {template_id}",
        "Hello",
    )


async def test_keys_that_differ_from_the_placeholders_are_named(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """t_key must list exactly the body's placeholders; the 422 says which are missing or extra."""
    user = new_user()
    response = await add(client, user, "Hi {{name}} at {{company}}", "name,city")
    assert response.status_code == 422
    body = response.json()
    assert (body["success"], body["status_code"]) == (False, 422)
    assert "missing from t_key: company" in body["message"]
    assert "not used in t_body: city" in body["message"]
    assert body["data"]["placeholders"] == ["company", "name"]


async def test_invalid_body_is_a_422_envelope_with_the_problems(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """A body that does not compile is answered in the envelope, with each problem's line and column."""
    response = await add(client, new_user(), "Hi {{ name }", "name")
    assert response.status_code == 422
    (problem,) = response.json()["data"]["problems"]
    assert (problem["part"], problem["line"]) == ("html", 1)


async def test_update_saves_a_new_body(client: httpx.AsyncClient, new_user: Callable[[], User]) -> None:
    """update-template replaces the body (a new version) and answers the id."""
    user = new_user()
    template_id = (await add(client, user, "Hi {{name}}", "name")).json()["data"]["template_id"]
    response = await client.patch(
        "/api/templates/update-template",
        json={"template_id": template_id, "t_body": "Bye {{name}} {{city}}", "t_key": "city,name"},
        headers=user.headers,
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"template_id": template_id}
    template = (await client.get(f"/v1/templates/{template_id}", headers=user.headers)).json()
    assert (template["version"], template["html"]) == (2, "Bye {{name}} {{city}}")


async def test_update_checks_the_keys(client: httpx.AsyncClient, new_user: Callable[[], User]) -> None:
    """An update whose t_key disagrees with its body is refused and changes nothing."""
    user = new_user()
    created = await create_template(client, user)
    response = await client.patch(
        "/api/templates/update-template",
        json={"template_id": created["id"], "t_body": "{{ a }}", "t_key": "b"},
        headers=user.headers,
    )
    assert response.status_code == 422
    assert (await client.get(f"/v1/templates/{created['id']}", headers=user.headers)).json()["version"] == 1


async def test_delete_takes_a_json_array_and_answers_the_deleted_ids(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """delete-template reads the ids from the DELETE body; unknown ids are simply not in the answer."""
    user = new_user()
    first, second = (await create_template(client, user))["id"], (await create_template(client, user))["id"]
    response = await client.request(
        "DELETE", "/api/templates/delete-template", json=[first, 999_999_999, second], headers=user.headers
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"template_ids": [first, second]}
    assert (await client.get("/api/templates/get-all-templates", headers=user.headers)).json()["data"] == {
        "templates": []
    }


async def test_errors_use_the_envelope_with_the_real_status(client: httpx.AsyncClient) -> None:
    """A missing token is a real 401, in the envelope the client reads."""
    response = await client.get("/api/templates/get-all-templates")
    assert response.status_code == 401
    body = response.json()
    assert (body["success"], body["status_code"]) == (False, 401)
    assert "Bearer" in body["message"]


async def test_a_malformed_body_is_a_400_envelope(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """A body missing t_key is answered 400 in the envelope, naming the field."""
    response = await client.post(
        "/api/templates/add-template", json={"t_body": "x"}, headers=new_user().headers
    )
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert "t_key" in response.text


async def test_delete_accepts_many_ids_at_once(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """However many ids the client sends, they go to the database as one parameter, not one each."""
    user = new_user()
    created = await create_template(client, user)
    ids = [*range(1_000_000, 1_040_000), created["id"]]
    response = await client.request(
        "DELETE", "/api/templates/delete-template", json=ids, headers=user.headers
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"template_ids": [created["id"]]}


async def test_the_legacy_list_is_served_from_the_cache(
    client: httpx.AsyncClient, new_user: Callable[[], User], templates_app: Litestar
) -> None:
    """A repeated get-all-templates runs no SQL and answers the same bytes, those of the compact envelope."""
    user = new_user()
    template_id = (await add(client, user, "<p>Hi {{name}}</p>", "name")).json()["data"]["template_id"]
    first = await client.get("/api/templates/get-all-templates", headers=user.headers)
    with counting_statements(templates_app) as statements:
        second = await client.get("/api/templates/get-all-templates", headers=user.headers)
    assert statements == []
    expected = {
        "success": True,
        "status_code": 200,
        "message": "templates",
        "data": {
            "templates": [
                {"template_id": template_id, "uid": user.id, "t_body": "<p>Hi {{name}}</p>", "t_key": "name"}
            ]
        },
    }
    assert first.content == second.content == msgspec.json.encode(expected)
    assert second.headers["content-type"] == "application/json"


async def test_a_v1_change_shows_in_the_cached_legacy_list(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """Any write voids the cached legacy list: a body changed through v1 is listed at once."""
    user = new_user()
    template_id = (await add(client, user, "<p>Old</p>", "")).json()["data"]["template_id"]
    await client.get("/api/templates/get-all-templates", headers=user.headers)
    changed = await client.patch(
        f"/v1/templates/{template_id}", json={"html": "<p>New</p>"}, headers=user.headers
    )
    assert changed.status_code == 200, changed.text
    listed = await client.get("/api/templates/get-all-templates", headers=user.headers)
    assert [t["t_body"] for t in listed.json()["data"]["templates"]] == ["<p>New</p>"]
