"""Uploading through /v1/attachments: what is accepted, what is refused, and what is left behind."""

from __future__ import annotations

import asyncio
import hashlib
import re

import httpx
import pytest

from mailmerger_storage.settings import MiB
from tests.storage.conftest import MAX_UPLOAD, QUOTA, Bucket, Rows, User
from tests.storage.forms import CONTENT_TYPE, PNG, CountingBody, File, form, office_zip, pdf, upload

NOTHING = {"attachments": 0, "blobs": 0, "designations": 0}


async def _internal_info(
    client: httpx.AsyncClient, headers: dict[str, str], user: User, attachment_id: int
) -> dict[str, object]:
    response = await client.get(
        f"/internal/storage/attachments/{attachment_id}", params={"user_id": user.id}, headers=headers
    )
    assert response.status_code == 200, response.text
    info: dict[str, object] = response.json()
    return info


async def test_upload_stores_the_file_and_describes_it(
    client: httpx.AsyncClient, user: User, bucket: Bucket
) -> None:
    """A valid PDF is stored under a generated key of the user's prefix and answered 201."""
    content = pdf(4096)
    response = await upload(client, user.headers, File("Résumé 2026.pdf", content))
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/attachments/{body['id']}"
    assert body["filename"] == "Résumé 2026.pdf"
    assert body["content_type"] == "application/pdf"
    assert body["kind"] == "other"
    assert body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    [key] = await bucket.keys(f"users/{user.id}/")
    assert re.fullmatch(rf"users/{user.id}/[0-9a-f]{{32}}", key)
    assert await bucket.body(key) == content


async def test_file_larger_than_a_part_is_stored_whole(
    client: httpx.AsyncClient, user: User, bucket: Bucket
) -> None:
    """A file above the part size goes up as a multipart upload and arrives byte for byte."""
    content = pdf(5 * MiB + 12345)
    response = await upload(client, user.headers, File("big.pdf", content))
    assert response.status_code == 201, response.text
    [key] = await bucket.keys(f"users/{user.id}/")
    assert await bucket.body(key) == content
    assert await bucket.unfinished_uploads(f"users/{user.id}/") == []


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("photo.pdf", PNG),  # PNG bytes named like a PDF
        ("letter.docx", pdf()),  # a PDF named like a Word document
        ("notes.txt", b"\x00\x01\x02binary" * 10),  # binary named like text
        ("notes.txt", "caf\u00e9 latin-1".encode("latin-1")),  # text, but not UTF-8
        ("report.docx", office_zip("xl/workbook.xml")),  # an Excel workbook named .docx
        ("program.exe", b"MZ\x90\x00" + bytes(100)),  # not on the allow-list at all
        ("no-extension", pdf()),
    ],
)
async def test_content_that_contradicts_the_name_is_415(
    client: httpx.AsyncClient, user: User, bucket: Bucket, rows: Rows, filename: str, content: bytes
) -> None:
    """The type is decided by magic bytes and extension together; a mismatch stores nothing."""
    response = await upload(client, user.headers, File(filename, content))
    assert response.status_code == 415, response.text
    assert response.json()["title"] == "Unsupported file"
    assert await bucket.keys(f"users/{user.id}/") == []
    assert await rows.count(user.id) == NOTHING


async def test_refusal_names_what_the_content_really_is(client: httpx.AsyncClient, user: User) -> None:
    """The 415 detail says what the bytes are and which files are accepted."""
    response = await upload(client, user.headers, File("cv.pdf", PNG))
    detail = response.json()["detail"]
    assert "'cv.pdf' is named like a PDF document, but its content is a PNG image" in detail
    assert ".pdf" in detail.rpartition("upload one of:")[2]


@pytest.mark.parametrize(
    ("filename", "content", "content_type"),
    [
        ("cv.docx", office_zip("word/document.xml"), "wordprocessingml.document"),
        ("numbers.xlsx", office_zip("xl/workbook.xml"), "spreadsheetml.sheet"),
        ("photo.PNG", PNG, "image/png"),
        ("table.csv", "name,city\nZoë,Köln\n".encode(), "text/csv"),
        (
            "legacy.doc",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500) + "WordDocument".encode("utf-16-le"),
            "msword",
        ),
    ],
)
async def test_accepted_types_are_served_with_their_real_content_type(
    client: httpx.AsyncClient, user: User, filename: str, content: bytes, content_type: str
) -> None:
    """Office, image and text files whose bytes match their name are accepted."""
    response = await upload(client, user.headers, File(filename, content))
    assert response.status_code == 201, response.text
    assert content_type in response.json()["content_type"]


async def test_empty_file_is_422(client: httpx.AsyncClient, user: User, bucket: Bucket, rows: Rows) -> None:
    """A file with no bytes is refused with a message to choose it again."""
    response = await upload(client, user.headers, File("empty.pdf", b""))
    assert response.status_code == 422
    assert "empty" in response.json()["detail"]
    assert await bucket.keys(f"users/{user.id}/") == []
    assert await rows.count(user.id) == NOTHING


async def test_oversized_file_is_413_and_leaves_nothing_behind(
    client: httpx.AsyncClient, user: User, bucket: Bucket, rows: Rows
) -> None:
    """Past the limit the server stops storing, aborts the multipart upload and keeps nothing."""
    body = CountingBody(File("huge.pdf", pdf(MAX_UPLOAD + 2 * MiB)))
    response = await client.post(
        "/v1/attachments", headers={**user.headers, "Content-Type": CONTENT_TYPE}, content=body
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert await bucket.keys(f"users/{user.id}/") == []
    assert await bucket.unfinished_uploads(f"users/{user.id}/") == []
    assert await rows.count(user.id) == NOTHING


async def test_announced_oversized_body_is_refused_before_reading(
    client: httpx.AsyncClient, user: User
) -> None:
    """A Content-Length beyond the limit is answered 413 before the form is read (a valid small file here)."""
    body = CountingBody(File("huge.pdf", pdf(1024)))
    headers = {**user.headers, "Content-Type": CONTENT_TYPE, "Content-Length": str(MAX_UPLOAD * 2)}
    response = await client.post("/v1/attachments", headers=headers, content=body)
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\win.ini.txt", "win.ini.txt"),
        ("cv\r\nX-Injected: yes.pdf", "cv X-Injected: yes.pdf"),
        ("\u202eexe.pdf", "exe.pdf"),
        ("cv\u2028Bcc: x@evil.test\u2029.pdf", "cv Bcc: x@evil.test .pdf"),
        ("cv\x85\x1b.pdf", "cv .pdf"),
        # An encoded-word look-alike is a name like any other: the sender writes it as RFC 2231.
        (
            "=?utf-8?q?x=0D=0ABcc:_someone@example.org?=.pdf",
            "=?utf-8?q?x=0D=0ABcc:_someone@example.org?=.pdf",
        ),
        ("r" * 296 + ".pdf", "r" * 196 + ".pdf"),
    ],
)
async def test_hostile_filenames_are_neutralised(
    client: httpx.AsyncClient, user: User, internal_headers: dict[str, str], raw: str, stored: str
) -> None:
    """Path parts, CR/LF and invisible characters never survive; the object key ignores the name."""
    content = b"plain text\n" if stored.endswith(".txt") else pdf()
    response = await upload(client, user.headers, File(raw, content))
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == stored
    info = await _internal_info(client, internal_headers, user, response.json()["id"])
    assert re.fullmatch(rf"users/{user.id}/[0-9a-f]{{32}}", str(info["object_key"]))


async def test_same_file_twice_is_stored_once(
    client: httpx.AsyncClient, user: User, bucket: Bucket, internal_headers: dict[str, str]
) -> None:
    """The second upload of identical bytes is a new attachment sharing the one stored object."""
    content = pdf(3 * MiB)
    first = await upload(client, user.headers, File("cv.pdf", content), {"kind": "resume"})
    second = await upload(client, user.headers, File("cv (copy).pdf", content))
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert second.json()["filename"] == "cv (copy).pdf"
    first_info = await _internal_info(client, internal_headers, user, first.json()["id"])
    second_info = await _internal_info(client, internal_headers, user, second.json()["id"])
    assert first_info["object_key"] == second_info["object_key"]
    assert len(await bucket.keys(f"users/{user.id}/")) == 1


async def test_same_large_file_twice_leaves_no_second_upload(
    client: httpx.AsyncClient, user: User, bucket: Bucket
) -> None:
    """A duplicate that went up as a multipart upload is aborted instead of completed."""
    content = pdf(5 * MiB + 100)
    for name in ("a.pdf", "b.pdf"):
        assert (await upload(client, user.headers, File(name, content))).status_code == 201
    assert len(await bucket.keys(f"users/{user.id}/")) == 1
    assert await bucket.unfinished_uploads(f"users/{user.id}/") == []


async def test_concurrent_uploads_of_the_same_file_store_it_once(
    client: httpx.AsyncClient, user: User, bucket: Bucket, rows: Rows
) -> None:
    """Two uploads of identical bytes racing each other still leave one object and two attachments."""
    content = pdf(5 * MiB + 4096, seed=b"race")
    responses = await asyncio.gather(
        *(upload(client, user.headers, File(f"copy-{n}.pdf", content)) for n in range(3))
    )
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert len(await bucket.keys(f"users/{user.id}/")) == 1
    assert await bucket.unfinished_uploads(f"users/{user.id}/") == []
    assert await rows.count(user.id) == {"attachments": 3, "blobs": 1, "designations": 0}


async def test_quota_refuses_a_file_that_does_not_fit(
    client: httpx.AsyncClient, user: User, bucket: Bucket
) -> None:
    """Past the per-user quota an upload is 413 saying how much is used and what to do."""
    size = 4 * MiB
    for seed in (b"1", b"2", b"3"):  # 12 MiB: exactly the quota
        assert (await upload(client, user.headers, File("f.pdf", pdf(size, seed=seed)))).status_code == 201
    response = await upload(client, user.headers, File("one-more.pdf", pdf(1024, seed=b"4")))
    assert response.status_code == 413
    body = response.json()
    assert "quota" in body["detail"]
    assert "delete attachments" in body["detail"]
    assert body["quota_bytes"] == QUOTA
    assert len(await bucket.keys(f"users/{user.id}/")) == 3


async def test_a_duplicate_costs_no_quota(client: httpx.AsyncClient, user: User) -> None:
    """A user at the quota can still upload bytes they already store (no new object is needed)."""
    files = [pdf(4 * MiB, seed=seed) for seed in (b"1", b"2", b"3")]
    for content in files:
        assert (await upload(client, user.headers, File("f.pdf", content))).status_code == 201
    response = await upload(client, user.headers, File("again.pdf", files[0]))
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("fields", "file", "detail"),
    [
        ({"kind": "photo"}, File("a.pdf", pdf()), "'kind' must be one of"),
        ({}, File("a.pdf", pdf(), field="attachment"), "form field 'file'"),
        ({}, File("", b""), "no file was chosen"),
    ],
)
async def test_incomplete_form_is_422_and_stores_nothing(
    client: httpx.AsyncClient, user: User, bucket: Bucket, fields: dict[str, str], file: File, detail: str
) -> None:
    """An unknown kind, a file in the wrong field or no file chosen is refused with what to send."""
    response = await upload(client, user.headers, file, fields)
    assert response.status_code == 422
    assert detail in response.json()["detail"]
    assert await bucket.keys(f"users/{user.id}/") == []


async def test_body_that_is_not_a_form_is_415(client: httpx.AsyncClient, user: User) -> None:
    """A raw or JSON body is refused: uploads are multipart/form-data."""
    response = await client.post("/v1/attachments", headers=user.headers, json={"file": "x"})
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]


async def test_broken_multipart_is_400(client: httpx.AsyncClient, user: User) -> None:
    """A form cut off before its closing boundary is a malformed request."""
    truncated = form(File("a.pdf", pdf()))[:-30]
    headers = {**user.headers, "Content-Type": CONTENT_TYPE}
    response = await client.post("/v1/attachments", headers=headers, content=truncated)
    assert response.status_code == 400
    assert "multipart" in response.json()["detail"]


async def test_upload_without_token_is_401(client: httpx.AsyncClient) -> None:
    """Uploading needs a user."""
    response = await upload(client, {}, File("a.pdf", pdf()))
    assert response.status_code == 401
