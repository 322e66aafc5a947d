"""Server-side template injection through every route that takes a template: refused or stopped, with why.

Timeouts are hang guards, not timing assertions: each payload is stopped within milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.templates.helpers import User, create_template, problem_messages, render_batch

# Payloads the template rules refuse before anything is compiled.
REFUSED_AT_COMPILE = [
    pytest.param("{{ ''.__class__.__mro__ }}", "internal attribute", id="class_mro"),
    pytest.param("{{ ''.__class__.__mro__[1].__subclasses__() }}", "internal attribute", id="subclasses"),
    pytest.param("{{ ''|attr('__class__') }}", "unknown filter 'attr'", id="attr_filter"),
    pytest.param("{{ x|attr('__globals__') }}", "unknown filter 'attr'", id="attr_globals"),
    pytest.param("{{ x['__class__'] }}", "internal attribute", id="getitem_dunder"),
    pytest.param("{{ lipsum.__globals__ }}", "internal attribute", id="lipsum_globals"),
    pytest.param("{{ cycler.__init__.__globals__.os }}", "internal attribute", id="cycler_globals"),
    pytest.param("{% include '/etc/passwd' %}", "cannot use other templates", id="include"),
    pytest.param("{{ self._TemplateReference__context }}", "reserved", id="self_context"),
    pytest.param("{{ dict(a=1) }}", "dict() is not a function", id="dict_global"),
    pytest.param("{% if a %}" * 200 + "{% endif %}" * 200, "nests more than 32 levels", id="deep_ifs"),
    pytest.param("{{ " + "(" * 400 + "a" + ")" * 400 + " }}", "nested too deeply", id="deep_parentheses"),
]

# Payloads only a render can reveal: the sandbox or a limit stops them, row by row.
STOPPED_AT_RENDER = [
    pytest.param(
        "{{ '{0.__class__}'.format_map(x) }}", {"x": {}}, "refused", "'format_map'", id="format_map"
    ),
    pytest.param("{{ '{0.__class__}'.format(x) }}", {"x": 1}, "refused", "'format'", id="format"),
    pytest.param("{{ x[key] }}", {"x": "x", "key": "__class__"}, "refused", "internal", id="dunder_by_data"),
    pytest.param("{{ range(10**9) }}", {}, "limit_exceeded", "at most 10000 numbers", id="range_1e9"),
    pytest.param(
        "{% for i in range(10**9) %}{% endfor %}", {}, "limit_exceeded", "at most 10000", id="loop_range_1e9"
    ),
    pytest.param("{{ 'a' * 10**9 }}", {}, "limit_exceeded", "values are limited", id="text_repetition"),
    pytest.param("{{ 10**10**10 }}", {}, "limit_exceeded", "larger than 128 bits", id="tower_of_powers"),
    pytest.param("{{ '%0999999999d' % 1 }}", {}, "refused", "'%' formatting", id="percent_format"),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("html", "reason"), REFUSED_AT_COMPILE)
async def test_create_refuses_payload_with_a_reason(
    client: httpx.AsyncClient, new_user: Callable[[], User], html: str, reason: str
) -> None:
    """Creating a template with the payload is 422 explaining why; nothing is saved."""
    user = new_user()
    response = await client.post(
        "/v1/templates", json={"name": "x", "subject": "s", "html": html}, headers=user.headers
    )
    assert response.status_code == 422
    assert reason in problem_messages(response)
    assert (await client.get("/v1/templates", headers=user.headers)).json()["items"] == []


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("html", "reason"), REFUSED_AT_COMPILE)
async def test_validate_refuses_payload_with_a_reason(
    client: httpx.AsyncClient, new_user: Callable[[], User], html: str, reason: str
) -> None:
    """Validating the payload is 422 explaining why."""
    response = await client.post(
        "/v1/templates/validate", json={"subject": "s", "html": html}, headers=new_user().headers
    )
    assert response.status_code == 422
    assert reason in problem_messages(response)


@pytest.mark.timeout(10)
async def test_update_refuses_payload_and_keeps_the_version(
    client: httpx.AsyncClient, new_user: Callable[[], User]
) -> None:
    """An edit that adds a payload is 422 and leaves the template at its version."""
    user = new_user()
    created = await create_template(client, user)
    response = await client.patch(
        f"/v1/templates/{created['id']}",
        json={"subject": "{{ ''.__class__.__mro__ }}"},
        headers=user.headers,
    )
    assert response.status_code == 422
    assert (await client.get(f"/v1/templates/{created['id']}", headers=user.headers)).json()["version"] == 1


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("html", "fields", "error", "reason"), STOPPED_AT_RENDER)
async def test_preview_stops_payload_with_a_reason(
    client: httpx.AsyncClient,
    new_user: Callable[[], User],
    html: str,
    fields: dict[str, object],
    error: str,
    reason: str,
) -> None:
    """Previewing is 422 naming the kind of refusal and where it happened; nothing leaks."""
    user = new_user()
    created = await create_template(client, user, subject="s", html=html)
    response = await client.post(
        f"/v1/templates/{created['id']}/preview", json={"fields": fields}, headers=user.headers
    )
    assert response.status_code == 422
    body = response.json()
    assert (body["error"], body["part"]) == (error, "html")
    assert reason in body["detail"]
    assert "<class" not in response.text


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("html", "fields", "error", "reason"), STOPPED_AT_RENDER)
async def test_render_batch_stops_payload_in_its_row(
    client: httpx.AsyncClient,
    new_user: Callable[[], User],
    internal: dict[str, str],
    html: str,
    fields: dict[str, object],
    error: str,
    reason: str,
) -> None:
    """A campaign render fails the payload's rows with the reason, and still renders the others."""
    user = new_user()
    created = await create_template(
        client, user, subject="s", html="{% if evil %}" + html + "{% else %}ok{% endif %}"
    )
    rows = [{**fields, "evil": True}, {**fields, "evil": False}]
    response = await render_batch(client, internal, user, created["id"], 1, rows)
    assert response.status_code == 200
    failed, rendered = response.json()["results"]
    assert (failed["ok"], failed["error"]) == (False, error)
    assert reason in failed["detail"]
    assert (rendered["ok"], rendered["html"]) == (True, "ok")
    assert "<class" not in response.text
