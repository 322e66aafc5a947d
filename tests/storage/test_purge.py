"""UserDeleted: every row and object of the user goes, and a redelivery is harmless."""

from __future__ import annotations

import httpx
from aio_pika.abc import AbstractRobustConnection
from litestar import Litestar

from mailmerger_shared import contracts as c
from mailmerger_shared.broker import Publisher
from mailmerger_storage.worker import user_deleted_handler
from tests.storage.conftest import Bucket, Rows, User
from tests.storage.forms import File, pdf, upload
from tests.support import eventually


async def test_user_deleted_purges_rows_and_objects(
    client: httpx.AsyncClient,
    user: User,
    other_user: User,
    bucket: Bucket,
    rows: Rows,
    broker: AbstractRobustConnection,
) -> None:
    """After UserDeleted the user's rows and objects are gone; other users keep theirs."""
    for name, kind in (("cv.pdf", "resume"), ("letter.pdf", "cover_letter"), ("x.pdf", "other")):
        response = await upload(client, user.headers, File(name, pdf(seed=name.encode())), {"kind": kind})
        assert response.status_code == 201
    assert (await upload(client, other_user.headers, File("mine.pdf", pdf()))).status_code == 201

    publisher = await Publisher.open(broker)
    await publisher.publish(c.UserDeleted(user_id=user.id))

    async def purged() -> bool:
        counts = await rows.count(user.id)
        return not any(counts.values()) and await bucket.keys(f"users/{user.id}/") == []

    await eventually(purged)
    assert len(await bucket.keys(f"users/{other_user.id}/")) == 1
    assert (await rows.count(other_user.id))["attachments"] == 1


async def test_redelivered_user_deleted_also_removes_leftover_objects(
    app: Litestar, user: User, bucket: Bucket, rows: Rows
) -> None:
    """Handling the same event again succeeds, and sweeps objects no row points at."""
    await bucket.put(f"users/{user.id}/left-over-by-a-crash", b"orphan")
    handle = user_deleted_handler(app.state.infra, app.state.blobs)
    event = c.UserDeleted(user_id=user.id)
    for _ in range(2):
        await handle(event, c.Envelope.new(event.TAG))
    assert await bucket.keys(f"users/{user.id}/") == []
    assert not any((await rows.count(user.id)).values())
