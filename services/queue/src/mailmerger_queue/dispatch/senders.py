"""The user's Gmail accounts as the queue sees them: limits, usage, parking.

Daily usage counts the dispatch attempts of the last 24 hours that were (or may have been)
delivered — in flight, sent or unconfirmed — because Gmail's daily cap counts messages, and a
deferred or failed attempt did not send one. (The per-minute limit is kept by pacing, not by
counting: see ``pacing.Pace``.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import schemas
from mailmerger_queue.dispatch.pacing import DAY
from mailmerger_queue.errors import Invalid, NotFound
from mailmerger_queue.models import attempts, senders

_COUNTS_AS_SENT = (attempts.c.outcome.is_(None)) | attempts.c.outcome.in_(["sent", "unconfirmed"])


async def sent_last_day(session: AsyncSession, account_ids: list[int], now: datetime) -> dict[int, int]:
    """Messages each account sent (or may have) in the 24 hours before ``now``; absent: none."""
    if not account_ids:
        return {}
    a = attempts
    rows = await session.execute(
        select(a.c.account_id, func.count())
        .where(a.c.account_id.in_(account_ids), a.c.dispatched_at > now - DAY, _COUNTS_AS_SENT)
        .group_by(a.c.account_id)
    )
    return {account: int(count) for account, count in rows}


async def sends_leaving_the_day(
    session: AsyncSession, account_id: int, now: datetime
) -> list[tuple[datetime, int]]:
    """When the account's counted sends of the last 24 hours leave its rolling window, a minute at a
    time (the end of their minute, a day later), oldest first: when its daily cap frees up again."""
    a = attempts
    minute = func.date_trunc("minute", a.c.dispatched_at)
    rows = await session.execute(
        select(minute, func.count())
        .where(a.c.account_id == account_id, a.c.dispatched_at > now - DAY, _COUNTS_AS_SENT)
        .group_by(minute)
        .order_by(minute)
    )
    return [(at + DAY + timedelta(minutes=1), int(count)) for at, count in rows]


async def list_senders(session: AsyncSession, user_id: int, now: datetime) -> list[schemas.Sender]:
    rows = (
        await session.execute(
            select(senders)
            .where(senders.c.user_id == user_id)
            .order_by(senders.c.connected_at, senders.c.account_id)
        )
    ).all()
    usage = await sent_last_day(session, [row.account_id for row in rows], now)
    return [
        schemas.Sender(
            account_id=row.account_id,
            email=row.email,
            display_name=row.display_name,
            scopes=list(row.scopes),
            state=row.state,
            daily_limit=row.daily_limit,
            per_minute_limit=row.per_minute_limit,
            sent_last_24h=usage.get(row.account_id, 0),
            parked_until=row.parked_until if row.parked_until and row.parked_until > now else None,
            parked_reason=row.parked_reason if row.parked_until and row.parked_until > now else None,
        )
        for row in rows
    ]


async def update_limits(
    session: AsyncSession,
    user_id: int,
    account_id: int,
    limits: schemas.SenderLimits,
    now: datetime,
    *,
    per_minute_ceiling: int,
) -> schemas.Sender:
    """``per_minute_ceiling`` is Gmail's per-user quota in sends: the sender's guard stops at it too,
    so a higher pace would only have messages deferred again and again."""
    if limits.per_minute_limit is not None and limits.per_minute_limit > per_minute_ceiling:
        raise Invalid(
            f"per_minute_limit: at most {per_minute_ceiling}, Gmail's per-user sending quota "
            "(15,000 units a minute at 100 units a send); a lower value paces the account slower"
        )
    values = {name: value for name, value in msgspec.structs.asdict(limits).items() if value is not None}
    where = (senders.c.account_id == account_id) & (senders.c.user_id == user_id)
    if values:
        await session.execute(update(senders).where(where).values(**values))
    for sender in await list_senders(session, user_id, now):
        if sender.account_id == account_id:
            return sender
    raise NotFound(f"sender account {account_id} does not exist")


class Senders:
    """The senders use cases, built once with Gmail's per-minute quota (``per_minute_ceiling``)."""

    def __init__(self, *, per_minute_ceiling: int) -> None:
        self._per_minute_ceiling = per_minute_ceiling

    async def accounts(self, session: AsyncSession, user_id: int) -> list[schemas.Sender]:
        """The user's accounts, their limits, usage in the last 24 h and parking now."""
        return await list_senders(session, user_id, datetime.now(UTC))

    async def update_limits(
        self, session: AsyncSession, user_id: int, account_id: int, limits: schemas.SenderLimits
    ) -> schemas.Sender:
        return await update_limits(
            session,
            user_id,
            account_id,
            limits,
            datetime.now(UTC),
            per_minute_ceiling=self._per_minute_ceiling,
        )
