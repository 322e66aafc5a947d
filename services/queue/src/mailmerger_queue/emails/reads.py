"""Reading the ledger: one email with its history, and the user's emails page by page.

Every query filters by the owner; another user's email is "not found".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import schemas, structs
from mailmerger_queue.domain import State
from mailmerger_queue.errors import NotFound
from mailmerger_queue.models import attempts, messages, transitions
from mailmerger_shared.pagination import decode_cursor, encode_cursor

m = messages
# The list's name in its cursors: a cursor of another list is refused here.
CURSOR_KIND = "emails"


async def get_email(session: AsyncSession, user_id: int, message_id: int) -> schemas.EmailDetail:
    row = (
        await session.execute(
            select(*structs.EMAIL_DETAIL)
            .select_from(structs.with_content())
            .where(m.c.id == message_id, m.c.user_id == user_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"email {message_id} does not exist")
    history = await session.execute(
        select(attempts).where(attempts.c.message_id == message_id).order_by(attempts.c.attempt)
    )
    moves = await session.execute(
        select(transitions).where(transitions.c.message_id == message_id).order_by(transitions.c.id)
    )
    return structs.email_detail(row, history, moves)


@dataclass(frozen=True)
class EmailFilter:
    states: list[State]
    account_id: int | None = None
    campaign_id: int | None = None
    send_after: datetime | None = None
    send_before: datetime | None = None


async def list_emails(
    session: AsyncSession, user_id: int, criteria: EmailFilter, *, cursor: str | None, limit: int
) -> schemas.EmailPage:
    """Newest first; ``next_cursor`` continues after the last item of this page (400 for a cursor
    this list did not hand out)."""
    conditions: list[ColumnElement[bool]] = [m.c.user_id == user_id]
    if criteria.states:
        conditions.append(m.c.state.in_([s.value for s in criteria.states]))
    if criteria.account_id is not None:
        conditions.append(m.c.account_id == criteria.account_id)
    if criteria.campaign_id is not None:
        conditions.append(m.c.campaign_id == criteria.campaign_id)
    if criteria.send_after is not None:
        conditions.append(m.c.send_at >= criteria.send_after)
    if criteria.send_before is not None:
        conditions.append(m.c.send_at < criteria.send_before)
    if cursor is not None:
        conditions.append(m.c.id < decode_cursor(CURSOR_KIND, cursor))
    rows = (
        await session.execute(
            select(*structs.EMAIL)
            .select_from(structs.with_content())
            .where(*conditions)
            .order_by(m.c.id.desc())
            .limit(limit + 1)
        )
    ).all()
    items = [structs.email(row) for row in rows[:limit]]
    more = len(rows) > limit
    return schemas.EmailPage(
        items=items, next_cursor=encode_cursor(CURSOR_KIND, items[-1].id) if more else None
    )
