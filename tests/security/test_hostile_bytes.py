"""Hostile bytes against every route of every service, generated from the apps themselves.

For each route the apps serve (the same discovery as the route matrix), the probes are built from
what the route takes: a NUL in each query parameter its OpenAPI names (and in a stray one, so that
every route gets at least one), in each path parameter, in each string field and each free-form
key of its JSON body (from its OpenAPI document, or for an undocumented internal route from its
``data`` type), then a JSON body that is not UTF-8, and 5,000-digit numbers in each numeric field;
a NUL in each text field of a multipart form and in its file name, and in a cell of a CSV body.
No probe may get a 5xx; a NUL must be refused by the kit's guard, naming where it is (400 for
parameters, 422 for a body's field), on legacy routes in their envelope; every answer says nosniff.
Routes are called through the gateway with a real user's token, internal ones on the internal
listener with the credential of the service they name.
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar

from mailmerger_shared.web.internal import caller_headers
from tests.security.routes import INTERNAL_CALLERS, SERVICES, Endpoint, discover
from tests.system.harness import PDF, SystemUnderTest, User, sign_up

pytestmark = pytest.mark.system

NUL_TEXT = "x\x00y"
HUGE = b"9" * 5000  # beyond Python's int-str conversion limit (4,300 digits)
STRAY = "mm_probe"
NUMBER_HERE = "<the 5,000-digit number>"
# Path parameter values that reach the handler (ids need not exist: every probe is refused first).
PATH_VALUES = {"kind": "resume", "path": "openapi.json"}


# The all-in-one's gateway answers these for every service at once; the app's own are called
# in-process (a probe is refused before any handler runs, so no resource of the app is used).
SERVED_BY_THE_GATEWAY = frozenset({"/health", "/ready", "/metrics"})


@dataclass
class Probe:
    """One request, and what the guard must answer to it (None: anything but a 5xx)."""

    name: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    status: int | None = None
    names: str | None = None  # text the answer's detail (or legacy message) must contain


@dataclass
class Route:
    endpoint: Endpoint
    path_types: dict[str, type]
    query: list[str]
    json_schema: Any  # the JSON body's schema, resolved against ``definitions``
    definitions: dict[str, Any]
    multipart: Any
    csv: bool  # takes a text/csv body


def routes_of(service: str, app: Litestar) -> Iterator[Route]:
    document = app.openapi_schema.to_schema()
    handlers = {
        (method, re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path)): (route, handler)
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
        for method in handler.http_methods
    }
    for found in discover({service: app}):
        endpoint = found.endpoint
        route, handler = handlers[(endpoint.method, endpoint.path)]
        operation = document.get("paths", {}).get(endpoint.path, {}).get(endpoint.method.lower())
        path_types = {name: p.type for name, p in route.path_parameters.items()}
        query: list[str] = []
        json_schema, multipart, definitions, csv = None, None, document, False
        if operation is not None:
            query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            content = operation.get("requestBody", {}).get("content", {})
            json_schema = content.get("application/json", {}).get("schema")
            multipart = content.get("multipart/form-data", {}).get("schema")
            csv = "text/csv" in content
        elif "data" in handler.parsed_fn_signature.parameters:  # an internal route: from its type
            definitions = msgspec.json.schema(handler.parsed_fn_signature.parameters["data"].annotation)
            json_schema = definitions
        yield Route(endpoint, path_types, query, json_schema, definitions, multipart, csv)


def resolve(schema: Any, definitions: dict[str, Any]) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        target: Any = definitions
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def example(schema: Any, definitions: dict[str, Any]) -> Any:
    """A value of ``schema``: every property present, one item per array, strings as text."""
    schema = resolve(schema, definitions)
    if not isinstance(schema, dict):
        return "text"
    for choice in ("oneOf", "anyOf"):
        if choice in schema:
            options = [resolve(o, definitions) for o in schema[choice]]
            return example(next((o for o in options if o.get("type") != "null"), options[0]), definitions)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties")
        if properties:
            return {name: example(sub, definitions) for name, sub in properties.items()}
        extra = schema.get("additionalProperties")
        return {"field": example(extra, definitions) if isinstance(extra, dict) else "text"}
    if kind == "array":
        return [example(schema.get("items", {}), definitions)]
    return {"integer": 1, "number": 1.5, "boolean": False, "null": None}.get(kind, "text")


def leaves(value: Any, path: str = "$") -> Iterator[tuple[str, Any, Any]]:
    """(JSON path, parent, key) of every leaf of ``value``."""
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        child_path = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
        if isinstance(child, dict | list):
            yield from leaves(child, child_path)
        else:
            yield child_path, value, key


def with_leaf(document: Any, path: str, replacement: Any) -> Any:
    changed = copy.deepcopy(document)
    for leaf_path, parent, key in leaves(changed):
        if leaf_path == path:
            parent[key] = replacement
    return changed


def probes(route: Route) -> Iterator[Probe]:
    values = {
        name: PATH_VALUES.get(name, "x" if kind is str else "1") for name, kind in route.path_types.items()
    }
    path = route.endpoint.path.format(**values)
    for name in [STRAY, *route.query]:
        yield Probe(f"query {name}", path, params={name: NUL_TEXT}, status=400, names=f"'{name}'")
    for name, kind in route.path_types.items():
        nul_path = route.endpoint.path.format(**{**values, name: "x%00y"})
        yield Probe(f"path {name}", nul_path, status=400 if kind is str else None, names=f"'{name}'")
    if route.json_schema is not None:
        body = example(route.json_schema, route.definitions)
        for leaf_path, parent, key in leaves(body):
            if isinstance(parent[key], str):
                yield Probe(
                    f"body {leaf_path}",
                    path,
                    json=with_leaf(body, leaf_path, NUL_TEXT),
                    status=422,
                    names=leaf_path,
                )
            elif isinstance(parent[key], int | float) and not isinstance(parent[key], bool):
                marked = msgspec.json.encode(with_leaf(body, leaf_path, NUMBER_HERE))
                huge = marked.replace(msgspec.json.encode(NUMBER_HERE), HUGE)
                yield Probe(
                    f"5,000 digits {leaf_path}",
                    path,
                    content=huge,
                    headers={"content-type": "application/json"},
                )
            if isinstance(parent, dict) and key == "field":  # a free-form object: a NUL in a key
                keyed = copy.deepcopy(body)
                yield Probe(
                    f"key in {leaf_path}", path, json=_rekey(keyed, leaf_path), status=422, names="(its name)"
                )
        if not leaves_of_type(body, str):  # ids only: a NUL where a number belongs is refused as well
            yield Probe("body as text", path, json=NUL_TEXT, status=422, names="$")
        yield Probe(
            "body not UTF-8",
            path,
            content=b'{"x": "caf\xe9"}',
            headers={"content-type": "application/json"},
            status=400,
            names="not UTF-8",
        )
    if route.csv:
        csv_body = b"email,name\r\nada@example.org,A\x00a\r\n"
        yield Probe("csv cell", path, content=csv_body, headers={"content-type": "text/csv"})
    if route.multipart is not None:
        properties = resolve(route.multipart, route.definitions)["properties"]
        file_field = next(name for name, sub in properties.items() if sub.get("format") == "binary")
        fields = {name: str(example(sub, route.definitions)) for name, sub in properties.items()}
        del fields[file_field]
        upload = {file_field: ("r.pdf", PDF, "application/pdf")}
        for name in fields:
            yield Probe(f"form {name}", path, files=upload, data={**fields, name: NUL_TEXT})
        renamed = {file_field: ("r\x00.pdf", PDF, "application/pdf")}
        yield Probe("form file name", path, files=renamed, data=fields)


def leaves_of_type(body: Any, kind: type) -> list[str]:
    return [p for p, parent, key in leaves(body) if isinstance(parent[key], kind)]


def _rekey(document: Any, leaf_path: str) -> Any:
    for path, parent, key in list(leaves(document)):
        if path == leaf_path:
            parent["fi\x00eld"] = parent.pop(key)
    return document


@pytest.fixture(scope="module")
async def caller(system: SystemUnderTest) -> AsyncIterator[User]:
    user = await sign_up(system, "hostile")
    try:
        yield user
    finally:
        await user.client.aclose()


def said(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("message") or body)
    return str(body)


async def send(
    client: httpx.AsyncClient, method: str, probe: Probe, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(
        method,
        probe.path,
        params=probe.params,
        json=probe.json,
        content=probe.content,
        files=probe.files,
        data=probe.data,
        headers={**headers, **probe.headers},
    )


@pytest.mark.parametrize("service", SERVICES)
async def test_every_input_of_every_route_refuses_hostile_bytes_without_a_5xx(
    system: SystemUnderTest, caller: User, service: str
) -> None:
    """NUL in every query, path and JSON string input, JSON that is not UTF-8, 5,000-digit numbers:
    each route answers 4xx (a NUL named where it is), never 5xx. Every failure is listed at once."""
    app = system.public.apps[service]
    routes = list(routes_of(service, app))
    assert routes, f"{service} serves no routes?"
    failures: list[str] = []
    sent = 0
    in_process = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")
    async with in_process, httpx.AsyncClient(base_url=system.internal_url, timeout=30) as internal:
        for route in routes:
            endpoint = route.endpoint
            if endpoint in INTERNAL_CALLERS:
                caller_name = INTERNAL_CALLERS[endpoint]
                client, headers = internal, caller_headers(caller_name, system.credentials[caller_name])
            else:
                client, headers = caller.client, {}
            if endpoint.path in SERVED_BY_THE_GATEWAY:  # the all-in-one answers these itself
                client, headers = in_process, {}
            route_probes = list(probes(route))
            assert route_probes, f"no probe for {endpoint}"
            for probe in route_probes:
                sent += 1
                response = await send(client, endpoint.method, probe, headers)
                wrong = (
                    response.status_code >= 500
                    or response.headers.get("x-content-type-options") != "nosniff"
                    or (
                        probe.status is not None
                        and (response.status_code != probe.status or probe.names not in said(response))
                    )
                )
                if wrong:
                    failures.append(
                        f"{endpoint.method} {endpoint.path} [{probe.name}]: {response.status_code} "
                        f"(expected {probe.status or '< 500'} naming {probe.names!r}) {said(response)[:200]}"
                    )
    assert failures == [], f"{len(failures)} of {sent} probes:\n" + "\n".join(failures)
