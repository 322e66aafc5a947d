"""Deleting one email the user wrote (``DELETE /v1/emails/{id}``): one that was never sent.

Deleting is not a move of the ledger: the row goes, and with it (``ON DELETE CASCADE``) its
transitions, attempts and responses. So only what holds no record anyone needs is deleted: a held
or scheduled email not dispatched yet, a failed one, a cancelled one. An email in flight, one Gmail
may have sent, and a sent one stay; so does a campaign's email, which is its row's (cancel it, or
stop the row). The row is locked first: a dispatcher that locked it before waits for nothing
(``SKIP LOCKED``), and one that got there first has made it ``dispatched``, which is refused.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.dispatch.pacing import DAY
from mailmerger_queue.domain import State
from mailmerger_queue.errors import Conflict, NotFound
from mailmerger_queue.models import attempts, messages, recipients

m = messages

DELETABLE = frozenset({State.SCHEDULED, State.FAILED, State.CANCELLED})
# Attempts that sent (or may have sent) a message: what Gmail's daily limit counts (``dispatch.senders``).
_COUNTS_AS_SENT = attempts.c.outcome.is_(None) | attempts.c.outcome.in_(["sent", "unconfirmed"])

_INSTEAD = {
    State.DISPATCHED: "it is being sent right now; wait for its outcome",
    State.UNCONFIRMED: (
        "Gmail may have sent it; resolve it (POST /v1/emails/{id}/resolve), or cancel it to dismiss "
        "it and delete it then"
    ),
    State.SENT: "it was sent, and a sent email stays as the record of what Gmail has",
}


async def delete_email(session: AsyncSession, user_id: int, message_id: int, *, now: datetime) -> None:
    """Delete the user's email ``message_id`` if it was never sent; 409 saying what to do otherwise."""
    row = (
        await session.execute(
            select(m.c.id, m.c.state, m.c.campaign_id, recipients.c.row_number)
            .outerjoin(recipients, recipients.c.id == m.c.recipient_id)
            .where(m.c.id == message_id, m.c.user_id == user_id)
            .with_for_update(of=m)
        )
    ).first()
    if row is None:
        raise NotFound(f"email {message_id} does not exist")
    if row.campaign_id is not None:
        raise Conflict(
            f"email {message_id} belongs to campaign {row.campaign_id} and cannot be deleted alone; "
            f"cancel it (POST /v1/emails/{message_id}/cancel), or stop the row "
            f"(POST /v1/campaigns/{row.campaign_id}/rows/{row.row_number}/stop)"
        )
    if row.state not in DELETABLE:
        instead = _INSTEAD.get(State(row.state), "").format(id=message_id)
        raise Conflict(f"email {message_id} is {row.state} and cannot be deleted: {instead}")
    last_sent = (
        await session.execute(
            select(func.max(attempts.c.dispatched_at)).where(
                attempts.c.message_id == message_id, _COUNTS_AS_SENT
            )
        )
    ).scalar_one()
    if last_sent is not None and last_sent + DAY > now:
        raise Conflict(
            f"email {message_id} may have been sent at {last_sent.isoformat()}, and Gmail's daily limit "
            f"counts it for 24 hours; it can be deleted from {(last_sent + DAY).isoformat()}"
        )
    await session.execute(delete(m).where(m.c.id == message_id, m.c.user_id == user_id))
