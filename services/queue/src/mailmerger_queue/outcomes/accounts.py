"""Applying account events (from auth and storage) to the senders table and the ledger.

Order: each sender row remembers the occurred-at of the event that set its state, and an older
event never overrides a newer one. Limits a user chose survive a reconnect. A deleted user's
data is purged and the user remembered, so a late ``GmailConnected`` cannot bring any of it back.

A deleted attachment fails the scheduled messages that reference it (reason
``attachment_deleted``) rather than sending them without it: a cold email that promises a resume
and arrives without one is worse than one the user sees failed and can compose again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import ledger
from mailmerger_queue.domain import SenderState, State, default_daily_limit
from mailmerger_queue.emails import legacy
from mailmerger_queue.models import attachments, campaigns, deleted_users, messages, senders
from mailmerger_queue.settings import DispatchSettings
from mailmerger_shared import contracts as c


async def apply_account_event(
    session: AsyncSession, event: c.Message, occurred_at: datetime, now: datetime, settings: DispatchSettings
) -> None:
    if isinstance(event, c.GmailConnected):
        await _connected(session, event, occurred_at, settings)
        await legacy.assign_waiting(session, event.user_id, now)
    elif isinstance(event, c.GmailDisconnected):
        await _set_state(session, event.account_id, SenderState.DISCONNECTED, occurred_at)
    elif isinstance(event, c.GmailReconnectRequired):
        await _set_state(session, event.account_id, SenderState.RECONNECT_REQUIRED, occurred_at)
    elif isinstance(event, c.UserDeleted):
        await purge_user(session, event.user_id, now)
    elif isinstance(event, c.AttachmentDeleted):
        await _attachment_deleted(session, event, now)


async def _connected(
    session: AsyncSession, event: c.GmailConnected, occurred_at: datetime, settings: DispatchSettings
) -> None:
    deleted = await session.execute(select(exists().where(deleted_users.c.user_id == event.user_id)))
    if deleted.scalar_one():
        return
    statement = pg_insert(senders).values(
        account_id=event.account_id,
        user_id=event.user_id,
        email=event.email,
        display_name=event.display_name,
        scopes=event.scopes,
        state=SenderState.CONNECTED.value,
        daily_limit=default_daily_limit(
            event.email,
            settings.consumer_domains,
            settings.consumer_daily_limit,
            settings.workspace_daily_limit,
        ),
        per_minute_limit=settings.per_minute_limit,
        connected_at=occurred_at,
        state_changed_at=occurred_at,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[senders.c.account_id],
            set_={
                "email": statement.excluded.email,
                "display_name": statement.excluded.display_name,
                "scopes": statement.excluded.scopes,
                "state": statement.excluded.state,
                "state_changed_at": statement.excluded.state_changed_at,
            },
            where=senders.c.state_changed_at <= statement.excluded.state_changed_at,
        )
    )


async def _set_state(
    session: AsyncSession, account_id: int, state: SenderState, occurred_at: datetime
) -> None:
    await session.execute(
        update(senders)
        .where(senders.c.account_id == account_id, senders.c.state_changed_at <= occurred_at)
        .values(state=state.value, state_changed_at=occurred_at)
    )


async def purge_user(session: AsyncSession, user_id: int, now: datetime) -> None:
    """Delete everything the queue holds about the user (history cascades with the messages)."""
    await session.execute(
        pg_insert(deleted_users).values(user_id=user_id, deleted_at=now).on_conflict_do_nothing()
    )
    await session.execute(delete(messages).where(messages.c.user_id == user_id))
    await session.execute(delete(campaigns).where(campaigns.c.user_id == user_id))
    await session.execute(delete(senders).where(senders.c.user_id == user_id))
    await session.execute(delete(attachments).where(attachments.c.user_id == user_id))


async def _attachment_deleted(session: AsyncSession, event: c.AttachmentDeleted, now: datetime) -> None:
    await session.execute(
        update(attachments)
        .where(attachments.c.attachment_id == event.attachment_id, attachments.c.user_id == event.user_id)
        .values(deleted_at=now)
    )
    m = messages
    await ledger.move(
        session,
        (m.c.user_id == event.user_id) & m.c.attachment_ids.contains([event.attachment_id]),
        sources=[State.SCHEDULED],
        target=State.FAILED,
        reason=f"failed: attachment {event.attachment_id} was deleted",
        now=now,
        values={
            "outcome_reason": "attachment_deleted",
            "outcome_detail": f"attachment {event.attachment_id} was deleted before the email was sent",
        },
    )
