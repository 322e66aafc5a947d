"""Applying the sender's outcome events to the ledger, idempotently and whatever their order.

Rules (each enforced by the ``from`` states of a ledger move):

* an envelope already processed is skipped (a redelivery, or the relay re-publishing a row);
  ``EmailSent`` is idempotent by itself (below), so its envelopes are not recorded;
* ``EmailSent`` is Gmail's word that the mail went out: it wins from every state but ``sent``,
  so a late ``EmailDeferred`` or ``EmailFailed`` after it changes nothing, and a sent message
  found after a dispatcher crash (state still ``scheduled``) is recorded as sent;
* ``EmailFailed``, ``EmailDeferred`` and ``EmailUnconfirmed`` apply only to a message in flight
  (``dispatched``, or ``scheduled`` when the dispatcher published and died before marking it, or
  ``unconfirmed`` when the sweep guessed so for want of any outcome), and only to the generation
  they answer: once the user sent a message again, an outcome of the earlier one changes nothing;
* ``SenderThrottled`` only ever moves ``parked_until`` later, for every row of the Google account;
* a campaign counts its failures since its last sent message, and pauses itself, saying why, when
  they reach ``campaign_failure_limit``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import case, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_queue import ledger
from mailmerger_queue.domain import NO_OUTCOME, OUTCOME_APPLIES, SENT_APPLIES, State
from mailmerger_queue.models import attempts, messages, senders
from mailmerger_queue.webhooks.events import stage_event, stage_message_events
from mailmerger_shared import contracts as c
from mailmerger_shared.batching import Batcher
from mailmerger_shared.db import transaction

m = messages
MAX_BATCH = 100
Received = tuple[c.Message, c.Envelope]  # an event as consumed: the message and its envelope


def _now() -> datetime:
    return datetime.now(UTC)


class OutcomeWriter:
    """Applies outcome events in group commits: one transaction for the events that arrived together.

    There is no timer (``mailmerger_shared.batching``'s group commit): while one batch is written
    the next gathers, so a quiet queue writes each event at once and a busy one many per
    transaction (a transaction per event cost more than the event itself: BEGIN and COMMIT are two
    more round trips). Each caller still gets its own answer: when a batch fails, its events are
    applied again one transaction each, so one bad event fails (and is redelivered) alone.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime] = _now,
        max_batch: int = MAX_BATCH,
        campaign_failure_limit: int = 0,
    ) -> None:
        """``campaign_failure_limit``: consecutive failures that pause a campaign (0: never)."""
        self._sessions = sessions
        self._failure_limit = campaign_failure_limit
        self._clock = clock
        self._batches: Batcher[Received, None] = Batcher(self._apply_batch, max_size=max_batch)

    async def apply(self, message: c.Message, envelope: c.Envelope) -> None:
        """Apply one event (skipped when its envelope was already processed); returns once committed."""
        await self._batches.submit((message, envelope))

    async def _apply_batch(self, events: list[Received]) -> list[Exception | None]:
        """Apply the events in one transaction or, if that fails, each in a transaction of its own."""
        try:
            await self._apply_all(events)
        except Exception:
            return [await self._apply_alone(event) for event in events]
        return [None] * len(events)

    async def _apply_alone(self, event: Received) -> Exception | None:
        try:
            await self._apply_all([event])
        except Exception as exc:
            return exc
        return None

    async def _apply_all(self, events: list[Received]) -> None:
        """Apply the events in order, in one transaction; runs of ``EmailSent`` as one statement each.

        Nearly every event is an ``EmailSent``, and one statement for a run of them is what makes
        the group commit cheap. Applying a run together cannot reorder anything that matters: a
        run holds only ``EmailSent``, which wins from every state but ``sent``.
        """
        now = self._clock()
        # One transaction even for a batch of EmailSent alone: the move to sent and the webhook
        # events it stages commit together (a batch costs BEGIN and COMMIT, not an event).
        async with transaction(self._sessions) as session:
            # An EmailSent needs no record of its envelope (one row write less per email): it moves
            # a message to sent from any state but sent, so applied again it changes nothing.
            others = [envelope.id for message, envelope in events if not isinstance(message, c.EmailSent)]
            fresh = await first_deliveries(session, others, now) if others else set()
            run: list[c.EmailSent] = []
            for message, envelope in events:
                if isinstance(message, c.EmailSent):
                    run.append(message)
                    continue
                if envelope.id not in fresh:
                    continue
                fresh.discard(envelope.id)  # the same envelope twice in one batch: once
                await record_sent(session, run, now)
                run = []
                await apply_outcome(session, message, now, campaign_failure_limit=self._failure_limit)
            await record_sent(session, run, now)


async def first_deliveries(session: AsyncSession, envelope_ids: list[UUID], now: datetime) -> set[UUID]:
    """Record the envelopes as processed; the ones that were not already (in this transaction's view).

    A concurrent duplicate waits on the primary key until the first one commits, then is skipped.
    """
    inserted = await session.execute(_FIRST_DELIVERIES, {"ids": envelope_ids, "now": now})
    return {envelope_id for (envelope_id,) in inserted}


_FIRST_DELIVERIES = text(
    "INSERT INTO queue.processed_events (envelope_id, processed_at) "
    "SELECT DISTINCT unnest(CAST(:ids AS uuid[])), CAST(:now AS timestamptz) "
    "ON CONFLICT DO NOTHING RETURNING envelope_id"
)


async def record_sent(session: AsyncSession, events: list[c.EmailSent], now: datetime) -> None:
    """Apply ``EmailSent`` events (in order: a message's first one wins) to the ledger and attempts."""
    if not events:
        return
    first = {event.message_id: event for event in reversed(events)}
    moved = await ledger.move_to_sent(
        session,
        [
            ledger.Sent(
                message_id=event.message_id,
                gmail_id=event.gmail_id,
                thread_id=event.thread_id,
                sent_at=event.sent_at,
                reason=_SENT_BY_GMAIL if not event.reconciled else _SENT_FOUND,
            )
            for event in first.values()
        ],
        sources=SENT_APPLIES,
        now=now,
    )
    # Only the messages this event moved: a redelivered EmailSent moves none and announces none.
    await stage_message_events(session, "message.sent", [message_id for message_id, _ in moved], now)


_SENT_BY_GMAIL = "sent by Gmail"
_SENT_FOUND = "found in the mailbox after an ambiguous outcome"


async def apply_outcome(
    session: AsyncSession, event: c.Message, now: datetime, *, campaign_failure_limit: int = 0
) -> None:
    if isinstance(event, c.SenderThrottled):
        await _park(session, event)
        return
    if isinstance(event, c.EmailSent):
        await record_sent(session, [event], now)
    elif isinstance(event, c.EmailFailed):
        failed = await _record(
            session,
            event,
            target=State.FAILED,
            reason=f"failed: {event.reason}",
            outcome=("failed", event.reason, event.detail),
            now=now,
            values={"outcome_reason": event.reason, "outcome_detail": event.detail},
        )
        if failed:
            await stage_message_events(session, "message.failed", [event.message_id], now)
        if failed and campaign_failure_limit:
            await _count_campaign_failure(session, event, campaign_failure_limit, now)
    elif isinstance(event, c.EmailDeferred):
        await _record(
            session,
            event,
            target=State.SCHEDULED,
            reason=f"deferred until {event.retry_at.isoformat()}: {event.reason}",
            outcome=("deferred", event.reason, event.detail),
            now=now,
            values={
                "send_at": event.retry_at,
                "outcome_reason": event.reason,
                "outcome_detail": event.detail,
            },
        )
    elif isinstance(event, c.EmailUnconfirmed):
        await _record(
            session,
            event,
            target=State.UNCONFIRMED,
            reason=UNCONFIRMED_REASON,
            outcome=("unconfirmed", "unconfirmed", event.detail),
            now=now,
            values={"outcome_reason": "unconfirmed", "outcome_detail": event.detail},
        )


UNCONFIRMED_REASON = (
    "unconfirmed: Gmail may have sent it and its mailbox could not tell; resolve it: resend anyway "
    "(the recipient may get it twice) or mark as sent"
)


async def _park(session: AsyncSession, event: c.SenderThrottled) -> None:
    """Park every row of the throttled Google account (Gmail's limits are per Google user)."""
    same_google_account = senders.c.google_key == (
        select(senders.c.google_key).where(senders.c.account_id == event.account_id).scalar_subquery()
    )
    # Locked oldest first, the order a dispatcher takes them in (its pacing row, then the others'
    # clocks): the two wait for each other instead of deadlocking.
    await session.execute(
        select(senders.c.account_id)
        .where(same_google_account)
        .order_by(senders.c.account_id)
        .with_for_update()
    )
    await session.execute(
        update(senders)
        .where(same_google_account)
        .values(
            parked_until=func.greatest(senders.c.parked_until, event.until),
            parked_reason=case(
                (func.coalesce(senders.c.parked_until, event.until) <= event.until, event.reason),
                else_=senders.c.parked_reason,
            ),
        )
    )


async def _record(
    session: AsyncSession,
    event: c.EmailFailed | c.EmailDeferred | c.EmailUnconfirmed,
    *,
    target: State,
    reason: str,
    outcome: tuple[str, str | None, str | None],
    now: datetime,
    values: dict[str, object],
) -> bool:
    """Apply the outcome to the message if it is in flight in the event's generation; whether it was."""
    in_flight = (m.c.state != State.UNCONFIRMED) | (m.c.outcome_reason == NO_OUTCOME)
    moved = await ledger.move(
        session,
        (m.c.id == event.message_id) & (m.c.generation <= event.generation) & in_flight,
        sources=OUTCOME_APPLIES | {State.UNCONFIRMED},
        target=target,
        reason=reason,
        now=now,
        values=values,
    )
    if not moved:
        return False
    kind, why, detail = outcome
    current_attempt = select(m.c.attempt).where(m.c.id == event.message_id).scalar_subquery()
    await session.execute(
        update(attempts)
        .where(attempts.c.message_id == event.message_id, attempts.c.attempt == current_attempt)
        .values(outcome=kind, outcome_at=now, reason=why, detail=detail)
    )
    return True


# One more failure for the message's campaign; a running campaign at the limit pauses, saying why.
_CAMPAIGN_FAILED = text(
    """
    UPDATE queue.campaigns c
    SET consecutive_failures = c.consecutive_failures + 1,
        state = CASE WHEN c.state = 'running' AND c.consecutive_failures + 1 >= :limit
                     THEN 'paused' ELSE c.state END,
        paused_reason = CASE WHEN c.state = 'running' AND c.consecutive_failures + 1 >= :limit
                             THEN 'paused itself after ' || (c.consecutive_failures + 1)
                                  || ' consecutive failures (the last: ' || :last || '); '
                                  || 'fix the cause, then resume it'
                             ELSE c.paused_reason END
    FROM queue.messages m
    WHERE m.id = :message_id AND c.id = m.campaign_id
    RETURNING c.id, c.user_id, c.paused_reason,
              c.state = 'paused' AND c.consecutive_failures = :limit
              AND c.paused_reason LIKE 'paused itself after %' AS paused_now
    """
)


async def _count_campaign_failure(
    session: AsyncSession, event: c.EmailFailed, limit: int, now: datetime
) -> None:
    last = f"{event.reason}: {event.detail}" if event.detail else event.reason
    counted = (
        await session.execute(
            _CAMPAIGN_FAILED, {"message_id": event.message_id, "limit": limit, "last": last[:500]}
        )
    ).one_or_none()
    if counted is not None and counted.paused_now:
        await stage_event(
            session,
            counted.user_id,
            "campaign.paused",
            {"campaign_id": counted.id, "reason": counted.paused_reason, "by": "failures"},
            now,
        )
