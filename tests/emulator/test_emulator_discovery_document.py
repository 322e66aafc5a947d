"""The emulated Gmail surface against Google's own Gmail discovery document (the copy shipped in
google-api-python-client, a test-only dependency): every route exists there with the same HTTP
method and path, every query parameter the emulator accepts is declared there, and the scopes
the emulator accepts for a method are among those Google lists for it."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from mailmerger_emulator.google.gmail import METHODS, STANDARD_PARAMETERS, UPLOAD_PATHS


def _document() -> Path:
    spec = importlib.util.find_spec("googleapiclient")  # untyped: located, never imported
    assert spec is not None, "google-api-python-client (dev dependency group) is not installed"
    assert spec.origin is not None
    return Path(spec.origin).parent / "discovery_cache" / "documents" / "gmail.v1.json"


DOCUMENT = _document()
GMAIL_PREFIXES = ("/gmail/", "/upload/gmail/", "/resumable/upload/gmail/")


@pytest.fixture(scope="module")
def discovery() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return document


def discovery_methods(discovery: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every method by its id without the ``gmail.users.`` prefix ("messages.send", "getProfile")."""
    found: dict[str, dict[str, Any]] = {}

    def walk(resource: dict[str, Any]) -> None:
        for method in resource.get("methods", {}).values():
            found[method["id"].removeprefix("gmail.users.")] = method
        for child in resource.get("resources", {}).values():
            walk(child)

    walk(discovery["resources"]["users"])
    return found


def shape(path: str) -> str:
    """A path with its parameters blanked: ``/gmail/v1/users/{}/messages/{}``."""
    return "/" + re.sub(r"\{[^}]*\}", "{}", path.lstrip("/"))


def test_every_declared_method_matches_the_discovery_document(discovery: dict[str, Any]) -> None:
    """METHODS: same HTTP method and path, parameters declared, scopes among Google's."""
    methods = discovery_methods(discovery)
    for method_id, spec in METHODS.items():
        google = methods[method_id]
        assert google["httpMethod"] == spec.http_method, method_id
        assert google["path"] == spec.path, method_id
        query_parameters = {
            name
            for name, parameter in google.get("parameters", {}).items()
            if parameter["location"] == "query"
        }
        assert spec.parameters <= query_parameters, method_id
        assert spec.scopes <= set(google["scopes"]), method_id


def test_standard_parameters_are_googles(discovery: dict[str, Any]) -> None:
    assert set(discovery["parameters"]) >= STANDARD_PARAMETERS


def test_upload_paths_are_the_documents(discovery: dict[str, Any]) -> None:
    protocols = discovery_methods(discovery)["messages.send"]["mediaUpload"]["protocols"]
    assert protocols["simple"]["path"] == UPLOAD_PATHS["simple"]
    assert protocols["resumable"]["path"] == UPLOAD_PATHS["resumable"]


def test_every_emulated_gmail_route_is_in_the_discovery_document(
    default_app: Litestar, discovery: dict[str, Any]
) -> None:
    """Each (HTTP method, path) the app serves under a Gmail prefix is a documented one.

    The one addition is the PUT that completes a resumable upload: Google does not document it as a
    method, it is the session URI its resumable start answers in ``Location`` (the simple upload
    path with ``upload_id``).
    """
    documented = {(spec["httpMethod"], shape(spec["path"])) for spec in discovery_methods(discovery).values()}
    documented |= {("POST", shape(path)) for path in UPLOAD_PATHS.values()}
    documented.add(("PUT", shape(UPLOAD_PATHS["simple"])))
    served = {
        (method, shape(route.path))
        for route in default_app.routes
        if route.path.startswith(GMAIL_PREFIXES)
        for method in route.methods
        if method not in ("HEAD", "OPTIONS")
    }
    assert served
    assert served <= documented, served - documented
    # And every method the table declares is served.
    assert {(spec.http_method, shape(spec.path)) for spec in METHODS.values()} <= served


@pytest.mark.parametrize("method_id", sorted(METHODS))
async def test_every_method_refuses_an_undeclared_parameter(
    emulator: httpx.AsyncClient, method_id: str
) -> None:
    """The emulator accepts only the parameters its table declares (held to the document above)."""
    spec = METHODS[method_id]
    path = "/" + re.sub(r"\{[^}]*\}", "0000000000000001", spec.path).replace("/0000000000000001/", "/me/", 1)
    answer = await emulator.request(spec.http_method, path, params={"bogus": "1"}, json={})
    assert answer.status_code == 400, answer.text
    assert 'Unknown name "bogus"' in answer.json()["error"]["message"]
