"""The web kit's guard against input that is not text, and its backstop: NUL characters, JSON that
is not UTF-8 and over-long numbers are 4xx problems saying where and what to fix, never 500s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from asyncpg.exceptions import CharacterNotInRepertoireError
from litestar import Request, Router, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from mailmerger_shared.settings import HttpSettings
from mailmerger_shared.web.app import service_app
from mailmerger_shared.web.input_guard import nul_path
from mailmerger_shared.web.legacy import envelope, legacy_exception_handlers


class Note(msgspec.Struct):
    title: str
    tags: list[str] = []
    fields: dict[str, str] = {}


@post("/v1/notes")
async def create_note(data: JSONBody[Note]) -> dict[str, Any]:
    return {"title": data.title}


@get("/v1/notes/{slug:str}")
async def read_note(slug: FromPath[str], q: FromQuery[str | None] = None) -> dict[str, Any]:
    return {"slug": slug, "q": q}


@post("/v1/stored")
async def store_text() -> None:
    # What the driver raises when PostgreSQL refuses a NUL in text.
    raise CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00')


@post("/v1/digits")
async def convert_digits(request: Request[Any, Any, Any]) -> dict[str, str]:
    # What a template literal does with a 5,000-digit number: Python's int-str conversion limit.
    return {"n": str(int((await request.body()).decode()))}


@post("/v1/broken-decoding")
async def broken_decoding() -> None:
    b"\xff".decode("utf-8")  # a bug of ours, whatever the request


@post("/add-note")
async def legacy_add_note(data: JSONBody[Note]) -> Any:
    return envelope({"title": data.title}, "added")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    legacy = Router("/api", route_handlers=[legacy_add_note], exception_handlers=legacy_exception_handlers())
    app = service_app(
        name="test",
        route_handlers=[create_note, read_note, store_text, convert_digits, broken_decoding, legacy],
        http=HttpSettings(),
        verifier=None,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


async def test_nul_in_a_json_string_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    """A NUL anywhere in a JSON body's strings is refused with its JSON path, before validation."""
    response = await client.post("/v1/notes", json={"title": "ok", "tags": ["a", "b\x00"]})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == "$.tags[1]"
    assert problem["detail"] == "$.tags[1] contains a NUL character (\\u0000), which is not text; remove it"


async def test_nul_in_a_json_key_is_named_as_a_key(client: httpx.AsyncClient) -> None:
    """A key holding a NUL is named too."""
    response = await client.post("/v1/notes", json={"title": "ok", "fields": {"a\x00": "x"}})
    assert response.status_code == 422
    assert response.json()["field"] == '$.fields["a\\u0000"] (its name)'


async def test_an_escaped_backslash_before_u0000_is_not_a_nul(client: httpx.AsyncClient) -> None:
    """The text ``\\u0000`` (a backslash, then ``u0000``) is ordinary text and passes."""
    response = await client.post("/v1/notes", json={"title": "\\u0000"})
    assert response.status_code == 201, response.text


async def test_json_that_is_not_utf8_is_a_400(client: httpx.AsyncClient) -> None:
    """A JSON body with bytes that are not UTF-8 is a 400 saying so (it was a 500)."""
    response = await client.post(
        "/v1/notes", content=b'{"title": "caf\xe9"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "not UTF-8 text (byte 14" in response.json()["detail"]


async def test_json_without_a_content_type_that_is_not_utf8_is_a_400(client: httpx.AsyncClient) -> None:
    """Without a JSON content type the guard does not read the body; the backstop answers 400."""
    response = await client.post("/v1/notes", content=b'{"title": "caf\xe9"}')
    assert response.status_code == 400
    assert response.json()["detail"] == "the request body is not UTF-8 text; send it encoded as UTF-8"


async def test_a_decoding_bug_of_ours_stays_a_500(client: httpx.AsyncClient) -> None:
    """The backstop blames the client only when the body it sent is not UTF-8."""
    response = await client.post("/v1/broken-decoding", json={"fine": "utf-8"})
    assert response.status_code == 500


async def test_nul_in_a_query_parameter_is_a_400_naming_it(client: httpx.AsyncClient) -> None:
    """A %00 in a query parameter is refused with the parameter's name."""
    response = await client.get("/v1/notes/x", params={"q": "a\x00"})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "the query parameter 'q' contains a NUL character (%00), which is not text; remove it"
    )


async def test_nul_in_a_path_parameter_is_a_400_naming_it(client: httpx.AsyncClient) -> None:
    """A %00 in a path parameter is refused with the parameter's name."""
    response = await client.get("/v1/notes/a%00b")
    assert response.status_code == 400
    assert response.json()["field"] == "slug"


async def test_nul_refused_by_the_database_is_a_422(client: httpx.AsyncClient) -> None:
    """Input the guard does not read (a form, a file) that brings a NUL to PostgreSQL is a 422."""
    response = await client.post("/v1/stored")
    assert response.status_code == 422
    assert "contains a NUL character" in response.json()["detail"]


async def test_a_number_beyond_pythons_digit_limit_is_a_422(client: httpx.AsyncClient) -> None:
    """Python's int-str conversion limit is the client's doing: 422 naming the limit."""
    response = await client.post("/v1/digits", content=b"1" * 5000)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("a number in the request has more than 4300 digits")


async def test_a_5000_digit_json_number_is_a_400(client: httpx.AsyncClient) -> None:
    """A 5,000-digit number in a JSON body is a 400 from the decoder, not a 500."""
    response = await client.post(
        "/v1/notes", content=b'{"title": ' + b"1" * 5000 + b"}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


async def test_legacy_routes_answer_the_guard_in_their_envelope(client: httpx.AsyncClient) -> None:
    """On a legacy route the refusal is the legacy envelope, with the real status and the detail."""
    response = await client.post("/api/add-note", json={"title": "a\x00"})
    assert response.status_code == 422
    assert response.json() == {
        "success": False,
        "status_code": 422,
        "message": "$.title contains a NUL character (\\u0000), which is not text; remove it",
        "data": {"source": "body", "field": "$.title"},
    }


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"a": "x"}, None),
        ({"a": [{"b": "x"}, {"b": "\x00"}]}, "$.a[1].b"),
        ({"first": "\x00", "second": "\x00"}, "$.first"),
        ({"with space": "\x00"}, '$["with space"]'),
        (["\x00"], "$[0]"),
    ],
)
def test_nul_path_names_the_first_string_holding_a_nul(document: Any, path: str | None) -> None:
    """The JSON path is the first NUL in document order."""
    assert nul_path(document) == path


@pytest.mark.slow
def test_nul_path_walks_deep_documents_without_recursion() -> None:
    """A document nested far deeper than Python recurses is walked iteratively."""
    document: Any = "\x00"
    for _ in range(100_000):
        document = [document]
    assert nul_path(document) == "$" + "[0]" * 100_000
