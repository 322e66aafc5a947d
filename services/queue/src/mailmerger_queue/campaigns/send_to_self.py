""" "Send a test of row N to myself": one row of a campaign, rendered as it will go, sent now to the
campaign's own Gmail address instead of the row's recipient.

The test is a message of its own, not of the campaign: it has no ``campaign_id``, so it counts in
neither the campaign's progress, results and daily cap, nor its spacing; it does count against the
account's Gmail limits, as any mail the account sends. Its subject starts with ``[Test]`` and its
creation is recorded as a test of that campaign's row, so the mailbox and the ledger both say what
it is. A draft can be tested before launch; that is what it is for.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import ledger
from mailmerger_queue.campaigns.service import owned
from mailmerger_queue.dispatch.wakeup import announce_due
from mailmerger_queue.domain import State, rfc_message_id
from mailmerger_queue.emails import message_size
from mailmerger_queue.emails.service import sending_account
from mailmerger_queue.errors import Conflict, NotFound
from mailmerger_queue.models import attachments, recipients
from mailmerger_queue.settings import ComposeSettings
from mailmerger_shared.context import current_correlation_id

SUBJECT_PREFIX = "[Test] "


async def send_row_to_self(
    session: AsyncSession,
    user_id: int,
    campaign_id: int,
    row_number: int,
    *,
    settings: ComposeSettings,
    now: datetime,
) -> int:
    """Write row ``row_number``'s message, addressed to the campaign's sending account, due now;
    returns its id. 409 when the row has a problem (it would not be sent either)."""
    campaign = await owned(session, user_id, campaign_id)
    account = await sending_account(session, user_id, campaign.account_id)
    r = recipients
    row = (
        await session.execute(select(r).where(r.c.campaign_id == campaign_id, r.c.row_number == row_number))
    ).first()
    if row is None:
        raise NotFound(f"campaign {campaign_id} has no row {row_number}")
    if row.problem is not None:
        raise Conflict(
            f"row {row_number} cannot be sent ({row.problem}: {row.detail}); "
            "fix the list and upload it again, or test another row"
        )
    attachment_ids = [*campaign.attachment_ids, *row.attachment_ids]
    await _refuse_deleted(session, attachment_ids)
    subject = SUBJECT_PREFIX + row.subject
    await message_size.require_message_fits(
        session,
        subject=subject,
        html=row.html,
        text=row.text,
        addresses=[account.email],
        attachment_ids=attachment_ids,
        limit=settings.max_message_bytes,
    )
    message_id = await ledger.next_message_id(session)
    await ledger.create(
        session,
        {
            "id": message_id,
            "user_id": user_id,
            "account_id": account.account_id,
            "state": State.SCHEDULED.value,
            "send_at": now,
            "rfc_message_id": rfc_message_id(message_id, settings.message_id_domain),
            "to_addrs": [account.email],
            "cc_addrs": [],
            "bcc_addrs": [],
            # Not the row's Cc and Bcc (a test reaches you alone); its Reply-To, to be seen.
            "reply_to_addrs": list(row.reply_to_addrs),
            "subject": subject,
            "html": row.html,
            "text": row.text,
            "attachment_ids": attachment_ids,
            "correlation_id": current_correlation_id(),
        },
        now=now,
        reason=(
            f"a test of campaign {campaign_id}, row {row_number} (for {row.address}), "
            f"sent to yourself at {account.email}"
        ),
    )
    await announce_due(session)
    return message_id


async def _refuse_deleted(session: AsyncSession, attachment_ids: list[int]) -> None:
    a = attachments
    deleted = (
        await session.execute(
            select(a.c.attachment_id).where(
                a.c.attachment_id.in_(attachment_ids), a.c.deleted_at.is_not(None)
            )
        )
    ).scalars()
    names = sorted(set(deleted))
    if names:
        raise Conflict(
            f"attachments {', '.join(map(str, names))} were deleted; upload them again and rebuild"
        )
