"""/internal/storage: the lookups the queue and sender services make with the service credential."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from mailmerger_shared.internal_api import AttachmentInfo
from mailmerger_shared.web.internal import caller_headers
from tests.storage.conftest import User
from tests.storage.forms import File, pdf, upload


async def _resume(client: httpx.AsyncClient, user: User) -> int:
    response = await upload(client, user.headers, File("cv.pdf", pdf(seed=b"internal")), {"kind": "resume"})
    assert response.status_code == 201, response.text
    attachment_id: int = response.json()["id"]
    return attachment_id


@pytest.mark.parametrize("headers", [{}, caller_headers("queue", "guessed")])
@pytest.mark.parametrize(
    "path", ["/internal/storage/attachments/1?user_id=1", "/internal/storage/users/1/designated/resume"]
)
async def test_internal_routes_refuse_callers_without_the_credential(
    client: httpx.AsyncClient, user: User, path: str, headers: dict[str, str]
) -> None:
    """No or a wrong credential of the queue is 401, even with a valid user token."""
    response = await client.get(path, headers={**user.headers, **headers})
    assert response.status_code == 401


async def test_attachment_lookup_answers_the_shared_shape(
    client: httpx.AsyncClient, user: User, internal_headers: dict[str, str]
) -> None:
    """The owner's attachment is described as AttachmentInfo, object key and hash included."""
    attachment_id = await _resume(client, user)
    response = await client.get(
        f"/internal/storage/attachments/{attachment_id}",
        params={"user_id": user.id},
        headers=internal_headers,
    )
    assert response.status_code == 200
    info = msgspec.json.decode(response.content, type=AttachmentInfo)
    assert (info.attachment_id, info.user_id, info.kind) == (attachment_id, user.id, "resume")
    assert info.object_key.startswith(f"users/{user.id}/")
    assert info.content_type == "application/pdf"


async def test_attachment_lookup_for_another_user_is_404(
    client: httpx.AsyncClient, user: User, other_user: User, internal_headers: dict[str, str]
) -> None:
    """The lookup is scoped by user_id: asking on behalf of someone else finds nothing."""
    attachment_id = await _resume(client, user)
    response = await client.get(
        f"/internal/storage/attachments/{attachment_id}",
        params={"user_id": other_user.id},
        headers=internal_headers,
    )
    assert response.status_code == 404


async def test_designated_resume_lookup_follows_the_latest_designation(
    client: httpx.AsyncClient, user: User, internal_headers: dict[str, str]
) -> None:
    """include_resume gets the designated resume; a user without a cover letter gets 404."""
    attachment_id = await _resume(client, user)
    resume = await client.get(
        f"/internal/storage/users/{user.id}/designated/resume", headers=internal_headers
    )
    assert resume.status_code == 200
    assert resume.json()["attachment_id"] == attachment_id
    letter = await client.get(
        f"/internal/storage/users/{user.id}/designated/cover_letter", headers=internal_headers
    )
    assert letter.status_code == 404
