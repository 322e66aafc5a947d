"""A message's next steps: sending a failed or unconfirmed message again, settling an unconfirmed one
as sent, and the sweep that leaves no message waiting for something that will never happen.

Sending a message again (retrying a failure, "send now", "resend anyway") starts a new
*generation* of it: the sender's ledger answers a command of the generation it already settled
from its final row, and takes a newer one as new work. Only the user starts a generation (a
re-dispatch, a redelivery or a deferral never does), so a message is sent at most once per
generation, and never again once sent. Resending an *unconfirmed* message is the one case where
the user accepts that the recipient may get it twice (where a read scope allows, the sender still
looks it up in the mailbox first).

What the sweep keeps true, so that every message has a next step:

- a due scheduled message of a *completed* campaign reopens it (the dispatcher only sends for
  running campaigns), one of a *cancelled* campaign is cancelled;
- a message still dispatched ``no_outcome_after`` its dispatch (re-dispatched in between, see
  ``redispatch``) becomes ``unconfirmed`` with reason ``no_outcome``, which the user resolves; the
  sender's own outcome still applies if it ever comes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import ledger
from mailmerger_queue.dispatch.wakeup import announce_due
from mailmerger_queue.domain import MARKED_SENT, NO_OUTCOME, RESENDABLE, CampaignState, State
from mailmerger_queue.models import attempts, campaigns, messages
from mailmerger_shared import metrics

log = logging.getLogger(__name__)

m, cp = messages, campaigns

SENT_AGAIN = "sent again, asked by the user"
RESENT_ANYWAY = (
    "resent anyway, asked by the user: Gmail may already have delivered the earlier attempt, "
    "so the recipient may get it twice"
)
MARKED_AS_SENT = "marked as sent by the user; Gmail never confirmed it"
NO_OUTCOME_DETAIL = (
    "the sender reported no outcome for {minutes:.0f} minutes; Gmail may or may not have sent it: "
    "resend it anyway (it may arrive twice) or mark it as sent"
)


def in_open_campaign() -> ColumnElement[bool]:
    """Not a message of a cancelled campaign (whose messages are never sent again)."""
    return ~exists().where(cp.c.id == m.c.campaign_id, cp.c.state == CampaignState.CANCELLED)


def unrendered_follow_up() -> ColumnElement[bool]:
    """A follow-up that could not be rendered (``sequences.builder``): it has no content to send
    (step 1's content is its recipient's, a follow-up's its own)."""
    return (m.c.step > 1) & m.c.subject.is_(None)


async def send_again(
    session: AsyncSession,
    where: ColumnElement[bool],
    *,
    now: datetime,
    sources: frozenset[State] = RESENDABLE,
) -> list[int]:
    """Schedule now, as a new generation, the messages matching ``where`` that are in ``sources``
    (failed and/or unconfirmed, never of a cancelled campaign, never a follow-up that could not be
    rendered); returns their ids.

    A completed campaign of theirs runs again, so the dispatcher sends them.
    """
    moved: list[int] = []
    for state, reason in ((State.FAILED, SENT_AGAIN), (State.UNCONFIRMED, RESENT_ANYWAY)):
        if state in sources:
            rows = await ledger.move(
                session,
                where & in_open_campaign() & ~unrendered_follow_up(),
                sources=[state],
                target=State.SCHEDULED,
                reason=reason,
                now=now,
                values={"send_at": now, "generation": m.c.generation + 1},
            )
            moved += [message_id for message_id, _ in rows]
    await made_due(session, moved)
    return sorted(moved)


async def made_due(session: AsyncSession, message_ids: list[int]) -> None:
    """Messages were made due now: reopen their completed campaigns and wake the dispatcher."""
    if not message_ids:
        return
    await session.execute(
        update(cp)
        .where(
            cp.c.state == CampaignState.COMPLETED,
            cp.c.id.in_(select(m.c.campaign_id).where(m.c.id.in_(message_ids))),
        )
        .values(state=CampaignState.RUNNING.value, finished_at=None)
    )
    await announce_due(session)


async def mark_sent(session: AsyncSession, where: ColumnElement[bool], *, now: datetime) -> list[int]:
    """Record the unconfirmed messages matching ``where`` as sent, as the user says; their ids."""
    rows = await ledger.move(
        session,
        where,
        sources=[State.UNCONFIRMED],
        target=State.SENT,
        reason=MARKED_AS_SENT,
        now=now,
        values={"outcome_reason": MARKED_SENT, "outcome_detail": MARKED_AS_SENT},
    )
    return sorted(message_id for message_id, _ in rows)


async def sweep(session: AsyncSession, *, now: datetime, no_outcome_after: timedelta) -> dict[str, int]:
    """Give every stuck message its next step (see the module's docstring); how many of each."""
    due = (m.c.state == State.SCHEDULED) & (m.c.send_at <= now)
    reopened = (
        await session.execute(
            update(cp)
            .where(cp.c.state == CampaignState.COMPLETED, exists().where(m.c.campaign_id == cp.c.id, due))
            .values(state=CampaignState.RUNNING.value, finished_at=None)
            .returning(cp.c.id)
        )
    ).all()
    cancelled = await ledger.move(
        session,
        m.c.campaign_id.in_(select(cp.c.id).where(cp.c.state == CampaignState.CANCELLED)),
        sources=[State.SCHEDULED],
        target=State.CANCELLED,
        reason="campaign cancelled",
        now=now,
    )
    unanswered = exists().where(
        attempts.c.message_id == m.c.id,
        attempts.c.attempt == m.c.attempt,
        attempts.c.dispatched_at < now - no_outcome_after,
    )
    given_up = await ledger.move(
        session,
        unanswered,
        sources=[State.DISPATCHED],
        target=State.UNCONFIRMED,
        reason=f"unconfirmed: {NO_OUTCOME}",
        now=now,
        values={
            "outcome_reason": NO_OUTCOME,
            "outcome_detail": NO_OUTCOME_DETAIL.format(minutes=no_outcome_after.total_seconds() / 60),
        },
    )
    swept = {"campaigns_reopened": len(reopened), "cancelled": len(cancelled), "no_outcome": len(given_up)}
    for action, count in swept.items():
        if count:
            metrics.SWEPT.labels(action).inc(count)
    if any(swept.values()):
        log.warning("swept messages that had no next step", extra=swept)
    return swept
