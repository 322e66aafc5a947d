"""One-click unsubscribe (RFC 8058): a recipient's POST to the link of a campaign message.

The link's token names the campaign row it was sent to (``tokens``); the POST suppresses that
row's address for the campaign's owner and stops the row's sequence, at once and idempotently
(a second POST changes nothing and answers the same). It needs no session and reveals nothing: a
token that does not open is answered like a row that no longer exists.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.compliance import suppression
from mailmerger_queue.compliance.tokens import UnsubscribeTokens
from mailmerger_queue.errors import NotFound
from mailmerger_queue.models import campaigns, recipients
from mailmerger_queue.sequences.domain import StopReason
from mailmerger_queue.sequences.stops import stop_row
from mailmerger_queue.webhooks.events import stage_event

INVALID_LINK = "this unsubscribe link is not valid, or its campaign was deleted"


async def unsubscribe(session: AsyncSession, tokens: UnsubscribeTokens, token: str, *, now: datetime) -> None:
    """Suppress the address the link was sent to (NotFound for a link that names no row)."""
    row = tokens.open(token)
    if row is None:
        raise NotFound(INVALID_LINK)
    found = (
        await session.execute(
            select(recipients.c.address, campaigns.c.user_id)
            .join(campaigns, campaigns.c.id == recipients.c.campaign_id)
            .where(recipients.c.campaign_id == row.campaign_id, recipients.c.row_number == row.row_number)
        )
    ).one_or_none()
    if found is None:
        raise NotFound(INVALID_LINK)
    entry = suppression.Entry(suppression.Kind.ADDRESS, found.address.lower())
    _, new = await suppression.add(
        session,
        found.user_id,
        entry,
        reason=suppression.Reason.UNSUBSCRIBE,
        source=f"one-click unsubscribe, campaign {row.campaign_id} row {row.row_number}",
        now=now,
    )
    # The row's own sequence stops now (its scheduled follow-ups cancelled); the address's other
    # rows and campaigns are held back by the suppression screen at their next dispatch.
    await stop_row(session, row.campaign_id, row.row_number, StopReason.UNSUBSCRIBED, now)
    if new:
        await stage_event(
            session,
            found.user_id,
            "message.unsubscribed",
            {"campaign_id": row.campaign_id, "row": row.row_number, "address": entry.value},
            now,
        )


async def is_valid(session: AsyncSession, tokens: UnsubscribeTokens, token: str) -> bool:
    """Whether the link names an existing row (the GET page offers the button only then)."""
    row = tokens.open(token)
    if row is None:
        return False
    found = await session.scalar(
        select(recipients.c.id).where(
            recipients.c.campaign_id == row.campaign_id, recipients.c.row_number == row.row_number
        )
    )
    return found is not None
