"""Use cases of single emails: compose, cancel, send now (reading is in ``emails.reads``).

Every query filters by the owner; another user's email is "not found". Composing validates and
renders everything before the row is written, so a scheduled message is always sendable as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import ledger, schemas
from mailmerger_queue.adapters.storage import StorageClient
from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.dispatch import lifecycle
from mailmerger_queue.dispatch.wakeup import announce_due
from mailmerger_queue.domain import (
    CANCELLABLE,
    MAX_REPLY_TO,
    RESENDABLE,
    SENDABLE_NOW,
    Resolution,
    SenderState,
    State,
    normalize_addresses,
    require_header_safe,
    rfc_message_id,
)
from mailmerger_queue.emails import message_size
from mailmerger_queue.errors import Conflict, Invalid, NotFound
from mailmerger_queue.models import Record, attachments, messages, senders
from mailmerger_queue.settings import ComposeSettings
from mailmerger_shared.context import current_correlation_id
from mailmerger_shared.internal_api import AttachmentInfo

m = messages


@dataclass(frozen=True)
class Content:
    subject: str
    html: str | None
    text: str | None


async def compose(
    session: AsyncSession,
    *,
    user_id: int,
    account_id: int | None,
    data: schemas.EmailContent,
    templates: TemplatesClient,
    storage: StorageClient,
    settings: ComposeSettings,
    now: datetime,
    hold: bool = False,
) -> int:
    """Validate, render and write one email sent from ``account_id``; returns its id.

    ``hold`` leaves ``send_at`` empty: the message waits for "send now" (the legacy queue).
    ``account_id`` None is the legacy queue's email written before the user connected any Gmail
    account: the first account they connect is given it (``legacy.assign_waiting``).
    """
    to = normalize_addresses("to", data.to)
    cc = normalize_addresses("cc", data.cc)
    bcc = normalize_addresses("bcc", data.bcc)
    reply_to = normalize_addresses("reply_to", data.reply_to)
    if len(reply_to) > MAX_REPLY_TO:
        raise Invalid(f"reply_to: name at most {MAX_REPLY_TO} addresses")
    if not to:
        raise Invalid("to: give at least one recipient")
    if len(to) + len(cc) + len(bcc) > settings.max_recipients:
        raise Invalid(
            f"to, cc and bcc together may name at most {settings.max_recipients} recipients (Gmail's limit)"
        )
    if account_id is not None:
        await sending_account(session, user_id, account_id)
    content = await _content(data, user_id, templates)
    attachment_ids = await resolve_attachments(session, storage, user_id, data.attachment_ids)
    await message_size.require_message_fits(
        session,
        subject=content.subject,
        html=content.html,
        text=content.text,
        addresses=[*to, *cc, *bcc, *reply_to],
        attachment_ids=attachment_ids,
        limit=settings.max_message_bytes,
    )
    message_id = await ledger.next_message_id(session)
    send_at = None if hold else max(data.send_at or now, now)
    await ledger.create(
        session,
        {
            "id": message_id,
            "user_id": user_id,
            "account_id": account_id,
            "state": State.SCHEDULED.value,
            "send_at": send_at,
            "rfc_message_id": rfc_message_id(message_id, settings.message_id_domain),
            "to_addrs": to,
            "cc_addrs": cc,
            "bcc_addrs": bcc,
            "reply_to_addrs": reply_to,
            "subject": content.subject,
            "html": content.html,
            "text": content.text,
            "attachment_ids": attachment_ids,
            "correlation_id": current_correlation_id(),
        },
        now=now,
        reason="held until sent by the user" if hold else "composed",
    )
    if send_at is not None and send_at <= now:
        await announce_due(session)
    return message_id


async def _content(data: schemas.EmailContent, user_id: int, templates: TemplatesClient) -> Content:
    if data.template is not None:
        if data.subject is not None or data.html is not None or data.text is not None:
            raise Invalid("give either a template or subject/html/text, not both")
        fill = data.template
        [row] = await templates.render(user_id, fill.template_id, fill.version, [fill.fields])
        if not row.ok:
            if row.missing:
                raise Invalid(f"template.fields: missing {', '.join(row.missing)}")
            raise Invalid(f"template could not be rendered: {row.detail or row.error}")
        subject = require_header_safe("template.fields (the rendered subject)", row.subject or "")
        return Content(subject=subject, html=row.html, text=row.text)
    if data.subject is None:
        raise Invalid("subject: give a subject (or a template)")
    if data.html is None and data.text is None:
        raise Invalid("give an html and/or a text body (or a template)")
    return Content(subject=require_header_safe("subject", data.subject), html=data.html, text=data.text)


async def sending_account(session: AsyncSession, user_id: int, account_id: int) -> Record:
    """The user's account ``account_id``; 422 if it is not theirs or no longer connected."""
    row = (
        await session.execute(
            select(senders).where(senders.c.account_id == account_id, senders.c.user_id == user_id)
        )
    ).first()
    if row is None:
        raise Invalid(f"account_id: {account_id} is not one of your connected Gmail accounts")
    if row.state == SenderState.DISCONNECTED:
        raise Invalid(f"account_id: {row.email} is disconnected; connect it again to send from it")
    return row


async def resolve_attachments(
    session: AsyncSession, storage: StorageClient, user_id: int, attachment_ids: list[int]
) -> list[int]:
    """Check each attachment with storage and keep its metadata for the sender; 422 if unknown."""
    resolved: list[AttachmentInfo] = []
    for attachment_id in dict.fromkeys(attachment_ids):
        info = await storage.attachment(user_id, attachment_id)
        if info is None:
            raise Invalid(f"attachment_ids: attachment {attachment_id} does not exist")
        resolved.append(info)
    await remember_attachments(session, resolved)
    return [info.attachment_id for info in resolved]


async def remember_attachments(session: AsyncSession, infos: list[AttachmentInfo]) -> None:
    if not infos:
        return
    rows = [
        {
            "attachment_id": i.attachment_id,
            "user_id": i.user_id,
            "object_key": i.object_key,
            "sha256": i.sha256,
            "filename": i.filename,
            "content_type": i.content_type,
            "size": i.size,
            "deleted_at": None,
        }
        for i in infos
    ]
    statement = pg_insert(attachments).values(rows)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[attachments.c.attachment_id],
            set_={name: statement.excluded[name] for name in rows[0] if name != "attachment_id"},
        )
    )


# --- moves the user asks for ------------------------------------------------------------------


async def cancel(session: AsyncSession, user_id: int, message_id: int, *, now: datetime) -> None:
    """Cancel a message not yet dispatched (or dismiss a failed/unconfirmed one); 409 otherwise."""
    if not await cancel_many(session, user_id, [message_id], now=now):
        state = await _state(session, user_id, message_id)
        raise Conflict(f"email {message_id} is {state} and can no longer be cancelled")


async def send_now(session: AsyncSession, user_id: int, message_id: int, *, now: datetime) -> None:
    """Make a message due now: an early send, a held one released, a failed or unconfirmed one sent
    again (a new attempt the sender really makes; an unconfirmed one may reach its recipient twice)."""
    if not await send_now_many(session, user_id, [message_id], now=now):
        state = await _state(session, user_id, message_id)
        if state in SENDABLE_NOW:
            raise Conflict(f"email {message_id} belongs to a cancelled campaign and cannot be sent")
        raise Conflict(
            f"email {message_id} is {state}; only scheduled, failed or unconfirmed emails can be sent now"
        )


async def cancel_many(
    session: AsyncSession, user_id: int, message_ids: list[int], *, now: datetime
) -> list[int]:
    """Cancel those of the user's messages that still can be; returns their ids."""
    moved = await ledger.move(
        session,
        m.c.id.in_(message_ids) & (m.c.user_id == user_id),
        sources=CANCELLABLE,
        target=State.CANCELLED,
        reason="cancelled by the user",
        now=now,
    )
    return sorted(message_id for message_id, _ in moved)


async def send_now_many(
    session: AsyncSession, user_id: int, message_ids: list[int], *, now: datetime
) -> list[int]:
    """Make due now those of the user's messages that can be sent; returns their ids.

    A failed or unconfirmed message is sent again as a new generation (``lifecycle.send_again``),
    not replayed; a message of a completed campaign reopens it, one of a cancelled campaign stays.
    """
    owned = m.c.id.in_(message_ids) & (m.c.user_id == user_id)
    moved = await ledger.move(
        session,
        owned & lifecycle.in_open_campaign(),
        sources=SENDABLE_NOW - RESENDABLE,
        target=State.SCHEDULED,
        reason="send now, asked by the user",
        now=now,
        values={"send_at": now},
    )
    scheduled = [message_id for message_id, _ in moved]
    await lifecycle.made_due(session, scheduled)
    return sorted([*scheduled, *await lifecycle.send_again(session, owned, now=now)])


async def resolve(
    session: AsyncSession, user_id: int, message_id: int, resolution: Resolution, *, now: datetime
) -> None:
    """Settle an unconfirmed message as the user chose: resend it anyway, or mark it as sent."""
    owned = (m.c.id == message_id) & (m.c.user_id == user_id)
    if resolution is Resolution.RESEND_ANYWAY:
        done = await lifecycle.send_again(session, owned, now=now, sources=frozenset({State.UNCONFIRMED}))
    else:
        done = await lifecycle.mark_sent(session, owned, now=now)
    if not done:
        state = await _state(session, user_id, message_id)
        if state == State.UNCONFIRMED:
            raise Conflict(f"email {message_id} belongs to a cancelled campaign and cannot be sent")
        raise Conflict(f"email {message_id} is {state}; only an unconfirmed email needs resolving")


async def _state(session: AsyncSession, user_id: int, message_id: int) -> str:
    state = (
        await session.execute(select(m.c.state).where(m.c.id == message_id, m.c.user_id == user_id))
    ).scalar_one_or_none()
    if state is None:
        raise NotFound(f"email {message_id} does not exist")
    return str(state)
