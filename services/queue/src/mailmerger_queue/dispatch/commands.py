"""Building what the dispatcher needs from ledger rows: a campaign's schedule, the SendEmail command,
and publishing those commands with the broker's confirms."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.dispatch.pacing import Schedule
from mailmerger_queue.emails.reads import HTML, SUBJECT, TEXT
from mailmerger_queue.models import Record, attachments, messages, recipients
from mailmerger_shared import contracts as c
from mailmerger_shared.broker.publisher import Publisher

log = logging.getLogger(__name__)
m = messages


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


def sendable(where: ColumnElement[bool]) -> Select[tuple[object, ...]]:
    """Lock the messages matching ``where`` (skipping rows another transaction holds), with what
    their command carries: a campaign message's content is in its recipient row."""
    r = recipients
    return (
        select(
            m.c.id,
            m.c.user_id,
            m.c.account_id,
            m.c.campaign_id,
            m.c.attempt,
            m.c.generation,
            m.c.rfc_message_id,
            m.c.to_addrs,
            m.c.cc_addrs,
            m.c.bcc_addrs,
            SUBJECT,
            HTML,
            TEXT,
            m.c.attachment_ids,
            m.c.correlation_id,
        )
        .select_from(m.outerjoin(r, r.c.id == m.c.recipient_id))
        .where(where)
        .order_by(m.c.id)
        .with_for_update(of=m, skip_locked=True)
    )


async def publish_commands(
    session: AsyncSession,
    publisher: Publisher,
    rows: list[Record],
    accounts: dict[int, Record],
    *,
    attempt: Callable[[Record], int],
) -> list[Record]:
    """Publish a ``SendEmail`` per row, bundled; returns the rows the broker confirmed."""
    if not rows:
        return []
    refs = await attachment_refs(session, {i for row in rows for i in row.attachment_ids})
    results = await publisher.publish_many(
        [
            (
                send_email(row, accounts[row.account_id], refs, attempt=attempt(row)),
                c.Envelope.new(c.SendEmail.TAG, correlation_id=row.correlation_id),
            )
            for row in rows
        ]
    )
    failures = [result for result in results if result is not None]
    if failures:
        # Their rows are left as they were, so the next pass publishes them again.
        log.error(
            "publishing SendEmail failed; the messages are left for the next pass",
            extra={"failed": len(failures), "error": repr(failures[0])},
        )
    return [row for row, result in zip(rows, results, strict=True) if result is None]


def send_email(
    row: Record, account: Record, refs: dict[int, c.AttachmentRef], *, attempt: int
) -> c.SendEmail:
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
        attempt=attempt,
        generation=row.generation,
    )
