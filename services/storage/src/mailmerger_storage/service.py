"""Use cases on stored attachments: read, list, designate, download, delete, purge a user.

Every query is scoped to its owner: another user's attachment does not exist (404). Uploading is
in ``uploads``; it shares the per-user lock defined here.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import Select, delete, exists, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_shared.contracts import AttachmentDeleted
from mailmerger_shared.db import transaction
from mailmerger_shared.errors import Invalid, NotFound
from mailmerger_shared.object_store import user_prefix
from mailmerger_shared.outbox import stage
from mailmerger_shared.pagination import decode_cursor, encode_cursor
from mailmerger_storage import models
from mailmerger_storage.adapters.blobs import BlobStore
from mailmerger_storage.domain import DESIGNATABLE, Attachment, Kind, content_disposition

log = logging.getLogger(__name__)

_a, _b, _d = models.attachments, models.blobs, models.designations

# The kind of the attachment list's pagination cursors (mailmerger_shared.pagination).
CURSOR_KIND = "attachments"


class Page(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Attachment]
    next_cursor: str | None


class DownloadLink(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    expires_at: datetime


async def serialise_user(session: AsyncSession, user_id: int) -> None:
    """Hold ``user_id``'s storage lock until the transaction ends.

    Changes to a user's blobs (upload, delete, purge) take it, so the quota sum, the dedupe
    lookup and "is this blob still referenced" are never read while another of them is changing.
    """
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('mailmerger.storage.user', :user_id))"),
        {"user_id": user_id},
    )


def _attachments() -> Select[tuple[object, ...]]:
    return select(
        _a.c.id,
        _a.c.user_id,
        _a.c.kind,
        _a.c.filename,
        _a.c.content_type,
        _b.c.size,
        _b.c.sha256,
        _b.c.object_key,
        _d.c.attachment_id.is_not(None).label("designated"),
        _a.c.created_at,
    ).select_from(_a.join(_b, _b.c.id == _a.c.blob_id).outerjoin(_d, _d.c.attachment_id == _a.c.id))


def _attachment(row: Row[tuple[object, ...]]) -> Attachment:
    return msgspec.convert(row, Attachment, from_attributes=True)


async def attachment_by_id(session: AsyncSession, user_id: int, attachment_id: int) -> Attachment:
    row = (
        await session.execute(_attachments().where(_a.c.id == attachment_id, _a.c.user_id == user_id))
    ).one_or_none()
    if row is None:
        raise NotFound(f"attachment {attachment_id} does not exist")
    return _attachment(row)


async def list_attachments(
    session: AsyncSession, user_id: int, *, kind: Kind | None, cursor: str | None, limit: int
) -> Page:
    """One page of the user's attachments, newest first; ``next_cursor`` continues after it."""
    query = _attachments().where(_a.c.user_id == user_id).order_by(_a.c.id.desc()).limit(limit + 1)
    if kind is not None:
        query = query.where(_a.c.kind == kind)
    if cursor is not None:
        query = query.where(_a.c.id < decode_cursor(CURSOR_KIND, cursor))
    rows = (await session.execute(query)).all()
    items = [_attachment(row) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(CURSOR_KIND, items[-1].id) if more else None)


async def set_designation(session: AsyncSession, user_id: int, kind: Kind, attachment_id: int) -> None:
    """Make ``attachment_id`` the user's current attachment of ``kind`` (one statement, race-free)."""
    statement = insert(_d).values(user_id=user_id, kind=kind, attachment_id=attachment_id)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[_d.c.user_id, _d.c.kind], set_={"attachment_id": statement.excluded.attachment_id}
        )
    )


async def designate(session: AsyncSession, user_id: int, attachment_id: int) -> Attachment:
    attachment = await attachment_by_id(session, user_id, attachment_id)
    if attachment.kind not in DESIGNATABLE:
        raise Invalid(
            f"attachment {attachment_id} is of kind {attachment.kind.value!r}; only a resume or a "
            "cover letter can be designated (upload it with that kind)"
        )
    await set_designation(session, user_id, attachment.kind, attachment_id)
    return msgspec.structs.replace(attachment, designated=True)


async def designated_attachment(session: AsyncSession, user_id: int, kind: Kind) -> Attachment:
    row = (
        await session.execute(_attachments().where(_d.c.user_id == user_id, _d.c.kind == kind))
    ).one_or_none()
    if row is None:
        raise NotFound(f"user {user_id} has no designated {kind.value}")
    return _attachment(row)


async def download_link(
    session: AsyncSession, blobs: BlobStore, user_id: int, attachment_id: int, *, ttl_seconds: int
) -> DownloadLink:
    """A presigned URL that downloads the attachment under its own name, as an attachment."""
    attachment = await attachment_by_id(session, user_id, attachment_id)
    url = await blobs.download_url(
        attachment.object_key,
        disposition=content_disposition(attachment.filename),
        content_type=attachment.content_type,
        ttl_seconds=ttl_seconds,
    )
    return DownloadLink(url=url, expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds))


async def delete_attachment(session: AsyncSession, user_id: int, attachment_id: int) -> str | None:
    """Delete the attachment and stage ``AttachmentDeleted``.

    Returns the object key when its blob is no longer referenced: the caller removes the object
    *after* the commit, so a failed commit never leaves a row pointing at a missing object.
    """
    await serialise_user(session, user_id)
    blob_id = await session.scalar(
        delete(_a).where(_a.c.id == attachment_id, _a.c.user_id == user_id).returning(_a.c.blob_id)
    )
    if blob_id is None:
        raise NotFound(f"attachment {attachment_id} does not exist")
    await stage(session, models.outbox, AttachmentDeleted(user_id=user_id, attachment_id=attachment_id))
    if await session.scalar(select(exists().where(_a.c.blob_id == blob_id))):
        return None
    key: str | None = await session.scalar(delete(_b).where(_b.c.id == blob_id).returning(_b.c.object_key))
    return key


async def discard_object(blobs: BlobStore, key: str) -> None:
    """Remove an object no row refers to any more; a failure only leaves garbage, so it is logged."""
    try:
        await blobs.delete(key)
    except Exception:
        log.exception("could not delete an unreferenced object", extra={"key": key})


async def purge_user(sessions: async_sessionmaker[AsyncSession], blobs: BlobStore, user_id: int) -> int:
    """Forget every attachment of ``user_id``, then remove every object under the user's prefix.

    Idempotent: a second run finds nothing to delete. Rows go first, so once this returns or
    fails half-way the API already shows nothing; objects are removed by prefix, which also
    catches leftovers of interrupted uploads. Returns the number of objects removed.
    """
    async with transaction(sessions) as session:
        await serialise_user(session, user_id)
        await session.execute(delete(_d).where(_d.c.user_id == user_id))
        await session.execute(delete(_a).where(_a.c.user_id == user_id))
        await session.execute(delete(_b).where(_b.c.user_id == user_id))
    return await blobs.delete_prefix(user_prefix(user_id))
