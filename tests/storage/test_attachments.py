"""A user's attachments after upload: listing, reading, designating, downloading and deleting."""

from __future__ import annotations

import io

import httpx
import msgspec
import pytest

from mailmerger_shared.pagination import encode_cursor
from mailmerger_storage.adapters.s3 import open_blob_store
from mailmerger_storage.settings import StorageSettings
from tests.storage.conftest import Bucket, Events, Rows, User
from tests.storage.forms import File, pdf, upload


async def _upload(
    client: httpx.AsyncClient, user: User, name: str, kind: str = "other", seed: bytes = b""
) -> int:
    response = await upload(client, user.headers, File(name, pdf(seed=seed or name.encode())), {"kind": kind})
    assert response.status_code == 201, response.text
    attachment_id: int = response.json()["id"]
    return attachment_id


async def test_list_pages_newest_first_with_a_cursor(client: httpx.AsyncClient, user: User) -> None:
    """Pages follow each other through next_cursor until it is null."""
    ids = [await _upload(client, user, f"f{n}.pdf") for n in range(5)]
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/attachments", params=params, headers=user.headers)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_list_filters_by_kind(client: httpx.AsyncClient, user: User) -> None:
    """?kind= narrows the list to one kind."""
    resume = await _upload(client, user, "cv.pdf", "resume")
    await _upload(client, user, "other.pdf")
    page = (await client.get("/v1/attachments", params={"kind": "resume"}, headers=user.headers)).json()
    assert [item["id"] for item in page["items"]] == [resume]


async def test_forged_cursor_is_400(client: httpx.AsyncClient, user: User) -> None:
    """A cursor the API did not hand out is refused, not misread."""
    response = await client.get("/v1/attachments", params={"cursor": "bm9wZQ"}, headers=user.headers)
    assert response.status_code == 400


async def test_a_cursor_of_another_list_is_400(client: httpx.AsyncClient, user: User) -> None:
    """Another list's cursor (here the templates list's) names no attachment: refused, naming the field."""
    cursor = encode_cursor("templates", 1)
    response = await client.get("/v1/attachments", params={"cursor": cursor}, headers=user.headers)
    assert response.status_code == 400
    assert response.json()["field"] == "cursor"


async def test_new_resume_becomes_the_designated_one(client: httpx.AsyncClient, user: User) -> None:
    """Uploading a resume designates it; the previous one stays but is no longer designated."""
    first = await _upload(client, user, "cv-2025.pdf", "resume")
    second = await _upload(client, user, "cv-2026.pdf", "resume")
    assert (await client.get(f"/v1/attachments/{first}", headers=user.headers)).json()["designated"] is False
    assert (await client.get(f"/v1/attachments/{second}", headers=user.headers)).json()["designated"] is True


async def test_designating_an_older_resume_switches_back(client: httpx.AsyncClient, user: User) -> None:
    """POST …/designate makes another resume the current one."""
    first = await _upload(client, user, "cv-2025.pdf", "resume")
    second = await _upload(client, user, "cv-2026.pdf", "resume")
    response = await client.post(f"/v1/attachments/{first}/designate", headers=user.headers)
    assert response.status_code == 200
    assert response.json()["designated"] is True
    assert (await client.get(f"/v1/attachments/{second}", headers=user.headers)).json()["designated"] is False


async def test_only_resumes_and_cover_letters_can_be_designated(
    client: httpx.AsyncClient, user: User
) -> None:
    """Designating an attachment of kind 'other' is 422 with what to do instead."""
    other = await _upload(client, user, "photo.pdf")
    response = await client.post(f"/v1/attachments/{other}/designate", headers=user.headers)
    assert response.status_code == 422
    assert "resume or a cover letter" in response.json()["detail"]


async def test_download_link_serves_the_exact_bytes_as_an_attachment(
    client: httpx.AsyncClient, user: User
) -> None:
    """The presigned URL returns the stored bytes with Content-Disposition: attachment and the name."""
    content = pdf(70_000, seed=b"download")
    created = await upload(client, user.headers, File('Résumé "final".pdf', content))
    attachment_id = created.json()["id"]
    link = (await client.get(f"/v1/attachments/{attachment_id}/download", headers=user.headers)).json()
    async with httpx.AsyncClient() as s3:
        response = await s3.get(link["url"])
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"Resume _final_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.pdf"
    )


async def test_delete_removes_row_and_object_and_publishes_attachment_deleted(
    client: httpx.AsyncClient, user: User, bucket: Bucket, rows: Rows, events: Events
) -> None:
    """After DELETE the attachment is gone from the API and S3, and AttachmentDeleted is published."""
    attachment_id = await _upload(client, user, "cv.pdf", "resume")
    response = await client.delete(f"/v1/attachments/{attachment_id}", headers=user.headers)
    assert response.status_code == 204
    assert (await client.get(f"/v1/attachments/{attachment_id}", headers=user.headers)).status_code == 404
    assert await rows.count(user.id) == {"attachments": 0, "blobs": 0, "designations": 0}
    assert await bucket.keys(f"users/{user.id}/") == []
    assert await events.attachment_deleted(user.id, attachment_id)


async def test_shared_object_stays_until_its_last_attachment_is_deleted(
    client: httpx.AsyncClient, user: User, bucket: Bucket
) -> None:
    """Deleting one of two attachments with the same bytes keeps the object for the other."""
    first = await _upload(client, user, "a.pdf", seed=b"same")
    second = await _upload(client, user, "b.pdf", seed=b"same")
    await client.delete(f"/v1/attachments/{first}", headers=user.headers)
    assert len(await bucket.keys(f"users/{user.id}/")) == 1
    await client.delete(f"/v1/attachments/{second}", headers=user.headers)
    assert await bucket.keys(f"users/{user.id}/") == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/attachments/{id}"),
        ("GET", "/v1/attachments/{id}/download"),
        ("POST", "/v1/attachments/{id}/designate"),
        ("DELETE", "/v1/attachments/{id}"),
    ],
)
async def test_another_users_attachment_is_404(
    client: httpx.AsyncClient, user: User, other_user: User, bucket: Bucket, method: str, path: str
) -> None:
    """Every route answers 404 for an attachment that belongs to someone else, and changes nothing."""
    attachment_id = await _upload(client, user, "private.pdf", "resume")
    response = await client.request(method, path.format(id=attachment_id), headers=other_user.headers)
    assert response.status_code == 404
    owner_view = await client.get(f"/v1/attachments/{attachment_id}", headers=user.headers)
    assert owner_view.json()["designated"] is True
    assert len(await bucket.keys(f"users/{user.id}/")) == 1


async def test_another_users_attachments_are_not_listed(
    client: httpx.AsyncClient, user: User, other_user: User
) -> None:
    """The list shows only the caller's own attachments."""
    await _upload(client, user, "private.pdf")
    page = (await client.get("/v1/attachments", headers=other_user.headers)).json()
    assert page == {"items": [], "next_cursor": None}


async def test_download_links_are_signed_for_the_public_endpoint(storage_settings: StorageSettings) -> None:
    """With MM_S3_PUBLIC_ENDPOINT_URL (compose: the services say s3:9000, a browser localhost:9000),
    links name the public host, and it serves them."""
    assert storage_settings.s3.endpoint_url is not None
    public = storage_settings.s3.endpoint_url.replace("127.0.0.1", "localhost")
    settings = msgspec.structs.replace(storage_settings.s3, public_endpoint_url=public)
    async with open_blob_store(settings) as store:
        await store.put("public/hello.txt", io.BytesIO(b"hello"), content_type="text/plain")
        url = await store.download_url(
            "public/hello.txt", disposition="attachment", content_type="text/plain", ttl_seconds=60
        )
    assert url.startswith(f"{public}/")
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert (response.status_code, response.content) == (200, b"hello")
