"""Stopping a recipient's sequence, and delaying it: the one entry point for every signal.

The user marks a row replied or stopped (the only signal an account with the send-only scope
has); the dispatcher stops a recipient it finds on the suppression list; the mailbox watcher
(``responses``) stops one that replied or bounced and delays one that auto-replied. A stop is
final and the first reason stands; it cancels the recipient's messages not yet dispatched (their
``outcome_reason`` is the stop reason), and the follow-up builder never builds another.
Concurrency: the stop locks the recipient row, as the builder does (``builder``), so a stop and a
build of the same recipient never interleave; a message already claimed by a dispatcher tick is
on its way and is not called back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import ledger
from mailmerger_queue.domain import State
from mailmerger_queue.errors import NotFound
from mailmerger_queue.models import Record, campaign_steps, campaigns, messages, recipients, suppressions
from mailmerger_queue.sequences.domain import HOUR_SECONDS, StopReason, follow_up_at

r, m, cp, st, sp = recipients, messages, campaigns, campaign_steps, suppressions

# The stop of a recipient found on the suppression list, by the entry's reason (the others: suppressed).
_SUPPRESSION_STOPS = {
    "unsubscribe": StopReason.UNSUBSCRIBED,
    "hard_bounce": StopReason.BOUNCED,
    "reply_stop": StopReason.REPLIED,
}


async def stop_recipient(
    session: AsyncSession, recipient_id: int, reason: StopReason, now: datetime, *, detail: str | None = None
) -> tuple[str, datetime, int] | None:
    """Stop the recipient's sequence for ``reason``; returns its stop (reason, when: the first stop
    stands) and how many of its messages this call cancelled, or None when there is no such
    recipient."""
    row = (
        await session.execute(
            select(r.c.stop_reason, r.c.stopped_at).where(r.c.id == recipient_id).with_for_update(of=r)
        )
    ).first()
    if row is None:
        return None
    if row.stop_reason is None:
        await session.execute(
            update(r).where(r.c.id == recipient_id).values(stopped_at=now, stop_reason=reason.value)
        )
        stop_reason, stopped_at = reason.value, now
    else:
        stop_reason, stopped_at = row.stop_reason, row.stopped_at
    cancelled = await ledger.move(
        session,
        m.c.recipient_id == recipient_id,
        sources=[State.SCHEDULED],
        target=State.CANCELLED,
        reason=f"the recipient's sequence stopped ({stop_reason})",
        now=now,
        values={"outcome_reason": stop_reason, "outcome_detail": detail},
    )
    return stop_reason, stopped_at, len(cancelled)


async def stop_suppressed(
    session: AsyncSession, rows: list[Record], why: dict[int, str], now: datetime
) -> None:
    """Stop for good the recipients of the claimed campaign messages (``structs.COMMAND`` rows)
    that the suppression list held back (``why``: message id → the screen's words); the stop
    reason follows the entry's (an unsubscribe: ``unsubscribed``, a hard bounce: ``bounced``)."""
    for row in rows:
        if row.id not in why or row.recipient_id is None:
            continue
        address = row.to_addrs[0].lower()
        entry = await session.scalar(
            select(sp.c.reason)
            .where(
                sp.c.user_id == row.user_id,
                ((sp.c.kind == "address") & (sp.c.value == address))
                | ((sp.c.kind == "domain") & (sp.c.value == address.rsplit("@", 1)[-1])),
            )
            .order_by(sp.c.kind)  # the address's own entry before its domain's
            .limit(1)
        )
        reason = _SUPPRESSION_STOPS.get(entry or "", StopReason.SUPPRESSED)
        await stop_recipient(session, row.recipient_id, reason, now, detail=why[row.id])


async def stop_row(
    session: AsyncSession, campaign_id: int, row_number: int, reason: StopReason, now: datetime
) -> tuple[str, datetime, int]:
    """``stop_recipient`` for the row ``row_number`` of the campaign (whose owner the caller checked)."""
    recipient_id = await session.scalar(
        select(r.c.id).where(r.c.campaign_id == campaign_id, r.c.row_number == row_number)
    )
    stopped = None if recipient_id is None else await stop_recipient(session, recipient_id, reason, now)
    if stopped is None:
        raise NotFound(f"campaign {campaign_id} has no row {row_number}")
    return stopped


async def recipient_of_message(session: AsyncSession, message_id: int) -> int | None:
    """The recipient a campaign message went to (for a watcher that found a reply to it)."""
    return await session.scalar(select(m.c.recipient_id).where(m.c.id == message_id))


async def stop_recipients(
    session: AsyncSession,
    where: ColumnElement[bool],
    reason: StopReason,
    now: datetime,
    *,
    detail: str | None = None,
) -> list[int]:
    """``stop_recipient`` for every recipient matching ``where`` that is not stopped yet (locked in
    id order, as two such calls take them): the recipients stopped."""
    stopped = list(
        (
            await session.execute(
                select(r.c.id).where(where, r.c.stopped_at.is_(None)).order_by(r.c.id).with_for_update(of=r)
            )
        ).scalars()
    )
    if not stopped:
        return []
    await session.execute(
        update(r).where(r.c.id.in_(stopped)).values(stopped_at=now, stop_reason=reason.value)
    )
    await ledger.move(
        session,
        m.c.recipient_id.in_(stopped),
        sources=[State.SCHEDULED],
        target=State.CANCELLED,
        reason=f"the recipient's sequence stopped ({reason.value})",
        now=now,
        values={"outcome_reason": reason.value, "outcome_detail": detail},
    )
    return stopped


async def delay_recipient(
    session: AsyncSession, recipient_id: int, now: datetime, *, hour_seconds: float = HOUR_SECONDS
) -> int:
    """An auto-reply (out of office): the recipient's next follow-up, if built and not yet
    dispatched, goes its step's delay from now instead (business days honoured; an hour lasts
    ``hour_seconds``); returns how many messages moved. A stopped recipient stays stopped. A
    follow-up not built yet needs nothing here: the builder counts its delay from the auto-reply
    recorded on the previous step (``messages.responded_at``)."""
    rows = (
        await session.execute(
            select(m.c.id, m.c.send_at, st.c.delay_hours, st.c.business_days, cp.c.timezone, cp.c.weekdays)
            .select_from(
                m.join(r, r.c.id == m.c.recipient_id)
                .join(cp, cp.c.id == m.c.campaign_id)
                .join(st, (st.c.campaign_id == m.c.campaign_id) & (st.c.step == m.c.step))
            )
            .where(m.c.recipient_id == recipient_id, m.c.state == State.SCHEDULED, r.c.stopped_at.is_(None))
            .with_for_update(of=m)
        )
    ).all()
    for row in rows:
        later = follow_up_at(
            now,
            row.delay_hours,
            business_days=row.business_days,
            timezone=row.timezone,
            weekdays=row.weekdays,
            hour_seconds=hour_seconds,
        )
        if row.send_at is None or later > row.send_at:
            await session.execute(update(m).where(m.c.id == row.id).values(send_at=later, updated_at=now))
    return len(rows)
