"""Domain errors carry no HTTP: the web kit answers each kind with its status, in v1 and legacy shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Router, get

from mailmerger_shared import errors
from mailmerger_shared.settings import HttpSettings
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.legacy import legacy_exception_handlers
from mailmerger_shared.web.problems import DOMAIN_STATUS

PUBLIC = {"exclude_from_auth": True}


class TemplateGone(errors.NotFound):
    """A service's own kind: answered like the kind it refines."""


@get("/v1/invalid", opt=PUBLIC)
async def invalid() -> None:
    raise errors.Invalid("the subject is empty; give it some text", extra={"field": "subject"})


@get("/v1/throttled", opt=PUBLIC)
async def throttled() -> None:
    raise errors.TooManyRequests("too many attempts; retry in 30 seconds", retry_after=30)


@get("/v1/gone", opt=PUBLIC)
async def gone() -> None:
    raise TemplateGone("template 7 does not exist")


@get("/api/invalid", opt=PUBLIC)
async def legacy_invalid() -> None:
    raise errors.Invalid("the email is not valid", extra={"field": "email"})


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = service_app(
        name="test",
        route_handlers=[
            invalid,
            throttled,
            gone,
            Router("/", route_handlers=[legacy_invalid], exception_handlers=legacy_exception_handlers()),
        ],
        http=HttpSettings(),
        verifier=None,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


async def test_an_invalid_value_is_a_422_problem_naming_the_field(client: httpx.AsyncClient) -> None:
    """Invalid answers 422 with its detail and extra members."""
    response = await client.get("/v1/invalid")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "subject"
    assert response.json()["title"] == "Unprocessable content"


async def test_retry_after_becomes_the_header(client: httpx.AsyncClient) -> None:
    """TooManyRequests answers 429 with Retry-After."""
    response = await client.get("/v1/throttled")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"


async def test_a_services_own_kind_answers_like_the_kind_it_refines(client: httpx.AsyncClient) -> None:
    """A subclass of NotFound is a 404."""
    assert (await client.get("/v1/gone")).status_code == 404


async def test_the_legacy_envelope_carries_a_domain_error(client: httpx.AsyncClient) -> None:
    """Under the legacy handlers the same error is the envelope with the real status."""
    response = await client.get("/api/invalid")
    assert response.status_code == 422
    body = response.json()
    assert body["success"] is False
    assert body["message"] == "the email is not valid"
    assert body["data"]["field"] == "email"


def test_every_kind_has_a_status() -> None:
    """Each kind the kit defines is mapped (a new kind without a status would answer 400)."""
    kinds = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.DomainError)
    }
    assert kinds == set(DOMAIN_STATUS)
