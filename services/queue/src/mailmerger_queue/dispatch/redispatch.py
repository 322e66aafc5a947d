"""The backstop for a message whose outcome never came back: publish its command again.

A ``dispatched`` message waits for the sender's outcome event. Nothing in the pipeline should lose
one (publishes are confirmed, consumers ack after committing, outages pause instead of spending the
delivery limit), but a message dead-lettered after its delivery limit, or an outcome event lost the
same way, would leave it ``dispatched`` for ever and its campaign never complete.

So a message still ``dispatched`` ``redispatch_after_seconds`` after its last dispatch is
published again, with the same attempt number, generation and Message-ID. That is safe by the
sender's design: it claims every message in its ledger before calling Gmail, so a message it
already settled is answered from the ledger (its outcome is published again), and an unsettled
one is reconciled by its Message-ID before any resend. Each re-dispatch is recorded as a
transition, so the message's history shows it. One still without an outcome after
``no_outcome_after_seconds`` is given up to its user (``lifecycle.sweep``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import ledger
from mailmerger_queue.compliance.tokens import UnsubscribeTokens
from mailmerger_queue.dispatch.commands import publish_commands, sendable
from mailmerger_queue.domain import State
from mailmerger_queue.models import messages, senders
from mailmerger_shared import metrics
from mailmerger_shared.broker.publisher import Publisher

log = logging.getLogger(__name__)

m = messages


async def redispatch_stale(
    session: AsyncSession,
    publisher: Publisher,
    *,
    now: datetime,
    stale_after: timedelta,
    limit: int,
    unsubscribe: UnsubscribeTokens,
) -> int:
    """Publish again up to ``limit`` messages dispatched before ``now - stale_after``; how many."""
    stale = (m.c.state == State.DISPATCHED) & (m.c.updated_at < now - stale_after)
    rows = list(await session.execute(sendable(stale).limit(limit)))
    if not rows:
        return 0
    accounts = {
        row.account_id: row
        for row in await session.execute(
            select(senders.c.account_id, senders.c.email, senders.c.display_name).where(
                senders.c.account_id.in_({row.account_id for row in rows})
            )
        )
    }
    confirmed = await publish_commands(
        session, publisher, rows, accounts, attempt=lambda row: row.attempt, unsubscribe=unsubscribe
    )
    if confirmed:
        # dispatched → dispatched: updated_at restarts the wait, the transition tells the story.
        await ledger.move(
            session,
            m.c.id.in_([row.id for row in confirmed]),
            sources=[State.DISPATCHED],
            target=State.DISPATCHED,
            reason=f"dispatched again: no outcome after {stale_after.total_seconds():.0f} s",
            now=now,
        )
        metrics.REDISPATCHED.inc(len(confirmed))
        log.warning("re-dispatched messages with no outcome", extra={"count": len(confirmed)})
    return len(confirmed)
