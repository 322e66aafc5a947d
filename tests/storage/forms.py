"""Building upload requests and sample files byte by byte, so tests control every header."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

BOUNDARY = "mm-test-boundary-7e3f0a"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


@dataclass(frozen=True)
class File:
    filename: str
    content: bytes
    field: str = "file"


def form_head(file: File, fields: dict[str, str] | None = None) -> bytes:
    """Everything before the file's bytes: the text fields, then the file part's headers."""
    head = b""
    for name, value in (fields or {}).items():
        head += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    # Escaped as browsers do (WHATWG): the parser decodes these, so CR/LF reach the service.
    filename = file.filename.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")
    head += (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{file.field}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return head


FORM_TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()


def form(file: File, fields: dict[str, str] | None = None) -> bytes:
    return form_head(file, fields) + file.content + FORM_TAIL


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    file: File,
    fields: dict[str, str] | None = None,
    *,
    path: str = "/v1/attachments",
) -> httpx.Response:
    return await client.post(
        path, headers={**headers, "Content-Type": CONTENT_TYPE}, content=form(file, fields)
    )


class CountingBody:
    """A form streamed in 64 KiB chunks that records how much of it the server pulled."""

    def __init__(self, file: File, fields: dict[str, str] | None = None) -> None:
        self.body = form(file, fields)
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), 64 * 1024):
            chunk = self.body[start : start + 64 * 1024]
            self.sent += len(chunk)
            yield chunk


# --- sample files -------------------------------------------------------------------------------


def pdf(size: int = 2048, *, seed: bytes = b"") -> bytes:
    """A PDF-looking file of exactly ``size`` bytes (magic number, then filler)."""
    head = b"%PDF-1.7\n" + seed
    filler = bytes(range(251)) * ((size - len(head)) // 251 + 1)  # 0, 1, … 250, 0, 1, …
    return head + filler[: size - len(head)]


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)


def office_zip(*part_names: str) -> bytes:
    """A ZIP archive holding the named parts (an OOXML document if it has its main part)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        for name in part_names:
            archive.writestr(name, "<xml>" + "lorem ipsum " * 200 + "</xml>")
    return buffer.getvalue()
