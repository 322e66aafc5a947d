"""Reading the ledger: one email with its history, and the user's emails page by page.

Every query filters by the owner; another user's email is "not found".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import schemas
from mailmerger_queue.domain import State
from mailmerger_queue.errors import Invalid, NotFound
from mailmerger_queue.models import Record, attempts, messages, recipients, transitions

m, r = messages, recipients

# A campaign message's rendered content lives in its recipient row (see models).
SUBJECT = func.coalesce(m.c.subject, r.c.subject).label("subject")
HTML = func.coalesce(m.c.html, r.c.html).label("html")
TEXT = func.coalesce(m.c.text, r.c.text).label("text")
_LISTED = [
    m.c.id,
    m.c.account_id,
    m.c.campaign_id,
    m.c.state,
    m.c.send_at,
    m.c.attempt,
    m.c.rfc_message_id,
    m.c.to_addrs,
    m.c.cc_addrs,
    m.c.bcc_addrs,
    SUBJECT,
    m.c.attachment_ids,
    m.c.gmail_id,
    m.c.thread_id,
    m.c.sent_at,
    m.c.outcome_reason,
    m.c.outcome_detail,
    m.c.created_at,
    m.c.updated_at,
]


def _listed(columns: list[Any]) -> Select[Any]:
    return select(*columns).select_from(m.outerjoin(r, r.c.id == m.c.recipient_id))


def _email(row: Record) -> schemas.Email:
    return schemas.Email(
        id=row.id,
        account_id=row.account_id,
        campaign_id=row.campaign_id,
        state=row.state,
        send_at=row.send_at,
        attempt=row.attempt,
        rfc_message_id=row.rfc_message_id,
        to=list(row.to_addrs),
        cc=list(row.cc_addrs),
        bcc=list(row.bcc_addrs),
        subject=row.subject,
        attachment_ids=list(row.attachment_ids),
        gmail_id=row.gmail_id,
        thread_id=row.thread_id,
        sent_at=row.sent_at,
        outcome_reason=row.outcome_reason,
        outcome_detail=row.outcome_detail,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def get_email(session: AsyncSession, user_id: int, message_id: int) -> schemas.EmailDetail:
    row = (
        await session.execute(
            _listed([*_LISTED, HTML, TEXT]).where(m.c.id == message_id, m.c.user_id == user_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"email {message_id} does not exist")
    history = (
        await session.execute(
            select(attempts).where(attempts.c.message_id == message_id).order_by(attempts.c.attempt)
        )
    ).all()
    moves = (
        await session.execute(
            select(transitions).where(transitions.c.message_id == message_id).order_by(transitions.c.id)
        )
    ).all()
    return schemas.EmailDetail(
        **{f: getattr(_email(row), f) for f in schemas.Email.__struct_fields__},
        html=row.html,
        text=row.text,
        attempts=[
            schemas.Attempt(
                attempt=a.attempt,
                dispatched_at=a.dispatched_at,
                outcome=a.outcome,
                outcome_at=a.outcome_at,
                reason=a.reason,
                detail=a.detail,
            )
            for a in history
        ],
        transitions=[
            schemas.Transition(
                at=t.at, from_state=t.from_state, to_state=t.to_state, reason=t.reason, attempt=t.attempt
            )
            for t in moves
        ],
    )


@dataclass(frozen=True)
class EmailFilter:
    states: list[State]
    account_id: int | None = None
    campaign_id: int | None = None
    send_after: datetime | None = None
    send_before: datetime | None = None


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise Invalid("cursor: pass back the next_cursor of the previous page unchanged")
    return int(cursor)


async def list_emails(
    session: AsyncSession, user_id: int, criteria: EmailFilter, *, cursor: str | None, limit: int
) -> schemas.EmailPage:
    """Newest first; ``next_cursor`` continues after the last item of this page."""
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
    after = _cursor(cursor)
    if after is not None:
        conditions.append(m.c.id < after)
    rows = (
        await session.execute(_listed(_LISTED).where(*conditions).order_by(m.c.id.desc()).limit(limit + 1))
    ).all()
    items = [_email(row) for row in rows[:limit]]
    return schemas.EmailPage(items=items, next_cursor=str(items[-1].id) if len(rows) > limit else None)
