"""Refusals given before the body was read reach the client, over a real socket (uvicorn)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from litestar import Litestar

from mailmerger_shared.serving import server_config
from mailmerger_storage.api.early_answers import GATEWAY_REFUSED_HEADER, MAX_REQUEST_BYTES
from mailmerger_storage.settings import MiB
from tests.storage.conftest import User
from tests.storage.forms import CONTENT_TYPE, File, form, pdf
from tests.support import eventually, free_port

LEGACY = "/api/storage/upload-file"
RESUME = {"filecontent": "resume"}


@contextlib.asynccontextmanager
async def serving(app: Litestar, http: str) -> AsyncIterator[int]:
    """The (already started) app under uvicorn on a free port, with ``http`` as its protocol."""
    port = free_port()
    config = server_config(app, "127.0.0.1", port, lifespan="off")
    config.http = http
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started)
        yield port
    finally:
        server.should_exit = True
        await task


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


class BrowserConnection:
    """One keep-alive connection used as a browser does: it sends a whole body in 64 KiB writes,
    then reads the answer (a reset while sending is not fatal: it reads what arrived before it)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Answer:
        head = {"Host": "storage", "Content-Length": str(len(body)), **headers}
        self._writer.write(f"{method} {path} HTTP/1.1\r\n".encode())
        self._writer.write("".join(f"{name}: {value}\r\n" for name, value in head.items()).encode() + b"\r\n")
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(body), 64 * 1024):
                self._writer.write(body[start : start + 64 * 1024])
                await self._writer.drain()
        status_line, *lines = (await self._reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines if line)
        answered = {name.lower(): value for name, value in fields.items()}
        content = await self._reader.readexactly(int(answered["content-length"]))
        return Answer(int(status_line.split()[1]), answered, json.loads(content))


@contextlib.asynccontextmanager
async def browser(port: int) -> AsyncIterator[BrowserConnection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield BrowserConnection(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def resume_of(size: int) -> bytes:
    return form(File("cv.pdf", pdf(size), field="uploaded_file"), RESUME)


# The service must not depend on what the HTTP server does with an unread body: both of
# uvicorn's protocols are tried.
@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_an_oversized_resume_is_answered_to_a_client_still_sending(
    app: Litestar, user: User, http: str
) -> None:
    """A 6 MB resume gets the envelope (HTTP 200, 413 inside), its body read to the end: the
    connection still serves the next request."""
    async with serving(app, http) as port, browser(port) as connection:
        headers = {**user.headers, "Content-Type": CONTENT_TYPE}
        answer = await connection.request("POST", LEGACY, headers, resume_of(6 * MiB))
        after = await connection.request("GET", "/health", {})
    assert answer.status == 200
    assert (answer.body["success"], answer.body["status_code"]) == (False, 413)
    assert "5 MB" in answer.body["message"]
    assert after.status == 200


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_a_large_upload_without_a_token_is_answered_401(app: Litestar, http: str) -> None:
    """No token and a 6 MB body: the client reads the 401 envelope, and the connection goes on."""
    async with serving(app, http) as port, browser(port) as connection:
        answer = await connection.request("POST", LEGACY, {"Content-Type": CONTENT_TYPE}, resume_of(6 * MiB))
        after = await connection.request("GET", "/health", {})
    assert answer.status == 401
    assert (answer.body["success"], answer.body["status_code"]) == (False, 401)
    assert "token" in answer.body["message"]
    assert after.status == 200


async def test_a_refused_body_is_read_only_up_to_the_gateway_limit(app: Litestar, user: User) -> None:
    """A body announced over MAX_REQUEST_BYTES is not read: the answer closes the connection."""
    async with serving(app, "httptools") as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = {**user.headers, "Content-Type": CONTENT_TYPE, "Content-Length": str(MAX_REQUEST_BYTES + 1)}
        writer.write(f"POST {LEGACY} HTTP/1.1\r\nHost: storage\r\n".encode())
        writer.write("".join(f"{k}: {v}\r\n" for k, v in head.items()).encode() + b"\r\n")
        answer = (await reader.readuntil(b"\r\n\r\n")).decode().lower()
        closed = await asyncio.wait_for(_read_to_end(reader), timeout=10)
        writer.close()
    assert answer.startswith("http/1.1 200")
    assert "connection: close" in answer
    assert closed


async def _read_to_end(reader: asyncio.StreamReader) -> bool:
    with contextlib.suppress(ConnectionError):
        await reader.read()
    return True


@pytest.mark.parametrize(
    ("path", "status", "read"),
    [
        (LEGACY, 200, lambda body: (body["success"], body["status_code"])),
        ("/v1/attachments", 413, lambda body: (False, body["status"])),
    ],
)
async def test_a_body_the_gateway_refused_is_answered_as_too_large(
    client: Any, user: User, path: str, status: int, read: Callable[[Any], tuple[bool, int]]
) -> None:
    """The gateway's marked, bodiless request gets the route's own 413 answer (nginx forwards it)."""
    headers = {**user.headers, "Content-Type": CONTENT_TYPE, GATEWAY_REFUSED_HEADER: "1"}
    response = await client.post(path, headers=headers)
    assert response.status_code == status
    assert read(response.json()) == (False, 413)
