"""POST /api/storage/upload-file: the old web client's upload and its envelope."""

from __future__ import annotations

import httpx
import pytest

from mailmerger_storage.settings import MiB
from tests.storage.conftest import Bucket, Rows, User
from tests.storage.forms import PNG, File, pdf, upload

PATH = "/api/storage/upload-file"


async def test_legacy_upload_stores_and_designates_the_resume(
    client: httpx.AsyncClient, user: User, internal_headers: dict[str, str]
) -> None:
    """A PDF with filecontent=resume is answered in the envelope and becomes the designated resume."""
    file = File("cv.pdf", pdf(seed=b"legacy"), field="uploaded_file")
    response = await upload(client, user.headers, file, {"filecontent": "resume"}, path=PATH)
    assert response.status_code == 200
    assert response.json() == {"success": True, "status_code": 200, "message": "file uploaded", "data": {}}
    designated = await client.get(
        f"/internal/storage/users/{user.id}/designated/resume", headers=internal_headers
    )
    assert designated.json()["filename"] == "cv.pdf"


@pytest.mark.parametrize(
    ("file", "fields", "status_code"),
    [
        (File("photo.png", PNG, field="uploaded_file"), {"filecontent": "resume"}, 415),
        (File("cv.pdf", PNG, field="uploaded_file"), {"filecontent": "resume"}, 415),
        (File("cv.pdf", pdf(5 * MiB + 1), field="uploaded_file"), {"filecontent": "resume"}, 413),
        (File("cv.pdf", b"", field="uploaded_file"), {"filecontent": "cover_letter"}, 422),
        (File("cv.pdf", pdf(), field="uploaded_file"), {"filecontent": "other"}, 422),
    ],
)
async def test_legacy_refused_file_is_http_200_with_the_real_code(
    client: httpx.AsyncClient,
    user: User,
    bucket: Bucket,
    rows: Rows,
    file: File,
    fields: dict[str, str],
    status_code: int,
) -> None:
    """The old upload page only reads the envelope: success false, the real code, what to fix."""
    response = await upload(client, user.headers, file, fields, path=PATH)
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False
    assert body["status_code"] == status_code
    assert body["message"]
    # data carries only the problem's details (e.g. the limit that was passed), never the upload.
    assert set(body["data"]) <= {"filename", "limit_bytes", "quota_bytes", "used_bytes"}
    assert await bucket.keys(f"users/{user.id}/") == []
    assert (await rows.count(user.id))["attachments"] == 0


async def test_legacy_upload_without_token_is_a_real_401(client: httpx.AsyncClient) -> None:
    """A missing token is not a refused file: HTTP 401, in the envelope."""
    file = File("cv.pdf", pdf(), field="uploaded_file")
    response = await upload(client, {}, file, {"filecontent": "resume"}, path=PATH)
    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False
    assert body["status_code"] == 401
