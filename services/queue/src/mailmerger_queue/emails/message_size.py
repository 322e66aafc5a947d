"""How large a message will be once the sender has built it, known before it enters the ledger.

Gmail refuses a message above its size limit (35 MB through the upload endpoint, GMAIL_FACTS.md
2.1). The sender checks again before its call, but by then the message has been accepted, queued
and paced, and the user learns of it only when it fails. So compose, a campaign's creation and
each row of its list are held to the same limit here, with the size and the limit named.

The size is a lower bound of what the sender writes (``mailmerger_sender.mime``): every
attachment in base64 in 76-character lines with CRLF (4/3 x 78/76 of its stored size), the
bodies at least as long as their UTF-8 bytes, the subject and the addresses. Being a lower
bound, a refusal here is never wrong: the sender would have built a larger message still.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.errors import MessageTooLarge
from mailmerger_queue.models import attachments

_BASE64_LINE = 76
MiB = 1024 * 1024


def encoded_attachment_size(size: int) -> int:
    """Bytes an attachment of ``size`` bytes takes in the message: base64, 76-character lines, CRLF."""
    encoded = 4 * math.ceil(size / 3)
    return encoded + 2 * math.ceil(encoded / _BASE64_LINE)


def minimum_size(
    *,
    subject: str | None,
    html: str | None,
    text: str | None,
    addresses: Iterable[str],
    attachment_sizes: Iterable[int],
) -> int:
    """A lower bound of the raw message's size in bytes (see the module docstring)."""
    bodies = sum(len(part.encode()) for part in (subject, html, text) if part)
    return (
        bodies
        + sum(len(address) for address in addresses)
        + sum(encoded_attachment_size(size) for size in attachment_sizes)
    )


def too_large(size: int, limit: int, *, what: str = "the message would be") -> str | None:
    """Why a message of ``size`` bytes cannot go through Gmail, or None when it fits."""
    if size <= limit:
        return None
    return (
        f"{what} at least {size:,} bytes ({_mb(size)}) once encoded (attachments in base64); "
        f"Gmail's limit is {limit:,} bytes ({_mb(limit)}): remove attachments or send large files as links"
    )


async def attachment_sizes(session: AsyncSession, attachment_ids: list[int]) -> list[int]:
    """The stored sizes of these attachments, as storage reported them when they were resolved."""
    if not attachment_ids:
        return []
    a = attachments
    sizes = await session.execute(
        select(a.c.attachment_id, a.c.size).where(a.c.attachment_id.in_(attachment_ids))
    )
    known: dict[int, int] = dict(sizes.all())
    return [known[attachment_id] for attachment_id in attachment_ids]


async def require_message_fits(
    session: AsyncSession,
    *,
    subject: str | None,
    html: str | None,
    text: str | None,
    addresses: Iterable[str],
    attachment_ids: list[int],
    limit: int,
) -> None:
    """422 naming the size and Gmail's limit when this message could never be sent."""
    size = minimum_size(
        subject=subject,
        html=html,
        text=text,
        addresses=addresses,
        attachment_sizes=await attachment_sizes(session, attachment_ids),
    )
    detail = too_large(size, limit)
    if detail is not None:
        raise MessageTooLarge(detail, size=size, limit=limit)


async def require_attachments_fit(session: AsyncSession, attachment_ids: list[int], *, limit: int) -> None:
    """422 when attachments every message of a campaign carries already exceed Gmail's limit."""
    size = sum(map(encoded_attachment_size, await attachment_sizes(session, attachment_ids)))
    detail = too_large(size, limit, what="the campaign's attachments alone make every message")
    if detail is not None:
        raise MessageTooLarge(detail, size=size, limit=limit)


def _mb(size: int) -> str:
    return f"{size / MiB:.1f}".removesuffix(".0") + " MB"
