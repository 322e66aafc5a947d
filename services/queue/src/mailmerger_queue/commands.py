"""Building what the dispatcher needs from ledger rows: a campaign's schedule, the SendEmail command."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.models import Record, attachments
from mailmerger_queue.pacing import Schedule
from mailmerger_shared import contracts as c


def schedule_of(row: Record) -> Schedule:
    return Schedule(
        timezone=row.timezone,
        window_start=row.window_start,
        window_end=row.window_end,
        weekdays=tuple(row.weekdays),
        daily_cap=row.daily_cap,
        spacing_seconds=row.spacing_seconds,
        jitter_seconds=row.jitter_seconds,
    )


async def attachment_refs(session: AsyncSession, ids: set[int]) -> dict[int, c.AttachmentRef]:
    if not ids:
        return {}
    rows = await session.execute(select(attachments).where(attachments.c.attachment_id.in_(list(ids))))
    return {
        row.attachment_id: c.AttachmentRef(
            attachment_id=row.attachment_id,
            object_key=row.object_key,
            sha256=row.sha256,
            filename=row.filename,
            content_type=row.content_type,
            size=row.size,
        )
        for row in rows
    }


def send_email(row: Record, account: Record, refs: dict[int, c.AttachmentRef]) -> c.SendEmail:
    return c.SendEmail(
        message_id=row.id,
        user_id=row.user_id,
        account_id=row.account_id,
        from_address=account.email,
        from_name=account.display_name,
        to=list(row.to_addrs),
        cc=list(row.cc_addrs),
        bcc=list(row.bcc_addrs),
        subject=row.subject,
        html=row.html,
        text=row.text,
        attachments=[refs[i] for i in row.attachment_ids],  # remembered when composed
        rfc_message_id=row.rfc_message_id,
        attempt=row.attempt + 1,
    )
