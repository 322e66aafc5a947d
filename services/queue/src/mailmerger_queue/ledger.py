"""Writing the ledger: creating messages and moving them between states, always with a transition.

``move`` is the only way a message changes state (``move_to_sent`` is its batched form for the
hottest transition, one row of values per message). It locks the rows it moves, changes them only
if they are still in one of the allowed ``from`` states, and records one transition per moved
row in the same statement, so concurrent moves (a cancel racing a dispatch, an event delivered
twice) each see the other's result and at most one of them wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.domain import State
from mailmerger_queue.models import messages, transitions


async def next_message_id(session: AsyncSession) -> int:
    """Reserve a ledger id before the insert, so the Message-ID can be built from it."""
    sequence = func.pg_get_serial_sequence("queue.messages", "id")
    return int((await session.execute(select(func.nextval(sequence)))).scalar_one())


async def create(session: AsyncSession, values: Mapping[str, Any], *, now: datetime, reason: str) -> None:
    """Insert one message (``values`` include its id and state) and its creation transition."""
    await session.execute(insert(messages).values(**values, attempt=0, created_at=now, updated_at=now))
    await session.execute(
        insert(transitions).values(
            message_id=values["id"],
            at=now,
            from_state=None,
            to_state=values["state"],
            reason=reason,
            attempt=0,
        )
    )


async def move(
    session: AsyncSession,
    where: ColumnElement[bool],
    *,
    sources: Iterable[State],
    target: State,
    reason: str,
    now: datetime,
    values: Mapping[str, Any] | None = None,
) -> list[tuple[int, State]]:
    """Move the messages matching ``where`` that are in ``sources`` to ``target``.

    Returns ``(message id, previous state)`` of every message moved; one that was in another
    state is left alone and absent from the result.
    """
    m = messages
    old = (
        select(m.c.id, m.c.state)
        .where(where, m.c.state.in_([s.value for s in sources]))
        .with_for_update()
        .cte("old")
    )
    moved = (
        update(m)
        .where(m.c.id == old.c.id)
        .values(state=target.value, updated_at=now, **(values or {}))
        .returning(m.c.id, old.c.state.label("from_state"), m.c.attempt)
        .cte("moved")
    )
    recorded = (
        insert(transitions)
        .from_select(
            ["message_id", "at", "from_state", "to_state", "reason", "attempt"],
            select(
                moved.c.id,
                literal(now, transitions.c.at.type),
                moved.c.from_state,
                literal(target.value),
                literal(reason),
                moved.c.attempt,
            ),
        )
        .returning(transitions.c.message_id, transitions.c.from_state)
    )
    rows = (await session.execute(recorded)).all()
    return [(row.message_id, State(row.from_state)) for row in rows]


@dataclass(frozen=True, slots=True)
class Sent:
    """Gmail's answer for one message: the values ``move_to_sent`` writes, and the reason recorded."""

    message_id: int
    gmail_id: str
    thread_id: str | None
    sent_at: datetime
    reason: str


# ``move`` for many messages, each with its own values, as one statement (the SQL text is fixed, so
# nothing is compiled per call). Same rules: lock, check the ``from`` state, record the transition;
# and the attempt that sent it is closed as sent, and its campaign's run of failures ends (only a
# campaign that had failures is written). One statement is atomic alone: callers may run it
# without a transaction around it.
_MOVE_TO_SENT = text(
    """
    WITH sent AS (
        SELECT * FROM unnest(
            CAST(:ids AS bigint[]), CAST(:gmail_ids AS text[]), CAST(:thread_ids AS text[]),
            CAST(:sent_ats AS timestamptz[]), CAST(:reasons AS text[])
        ) AS s(id, gmail_id, thread_id, sent_at, reason)
    ), old AS (
        SELECT m.id, m.state FROM queue.messages m JOIN sent ON sent.id = m.id
        WHERE m.state = ANY(CAST(:sources AS text[]))
        FOR UPDATE OF m
    ), moved AS (
        UPDATE queue.messages m
        SET state = 'sent', updated_at = :now, gmail_id = sent.gmail_id, thread_id = sent.thread_id,
            sent_at = sent.sent_at, outcome_reason = NULL, outcome_detail = NULL
        FROM old JOIN sent ON sent.id = old.id
        WHERE m.id = old.id
        RETURNING m.id, old.state AS from_state, m.attempt, m.campaign_id, sent.reason
    ), attempt_closed AS (
        UPDATE queue.attempts a SET outcome = 'sent', outcome_at = :now, reason = NULL, detail = NULL
        FROM moved WHERE a.message_id = moved.id AND a.attempt = moved.attempt
    ), failures_ended AS (
        UPDATE queue.campaigns c SET consecutive_failures = 0
        WHERE c.id IN (SELECT campaign_id FROM moved) AND c.consecutive_failures > 0
    )
    INSERT INTO queue.transitions (message_id, at, from_state, to_state, reason, attempt)
    SELECT id, :now, from_state, 'sent', reason, attempt FROM moved
    RETURNING message_id, attempt
    """
)


async def move_to_sent(
    session: AsyncSession, sent: Sequence[Sent], *, sources: Iterable[State], now: datetime
) -> list[tuple[int, int]]:
    """Move each message of ``sent`` (distinct ids) that is in ``sources`` to ``sent``, closing the
    attempt that sent it.

    Returns ``(message id, attempt)`` of every message moved.
    """
    if not sent:
        return []
    rows = await session.execute(
        _MOVE_TO_SENT,
        {
            "ids": [s.message_id for s in sent],
            "gmail_ids": [s.gmail_id for s in sent],
            "thread_ids": [s.thread_id for s in sent],
            "sent_ats": [s.sent_at for s in sent],
            "reasons": [s.reason for s in sent],
            "sources": [state.value for state in sources],
            "now": now,
        },
    )
    return [(message_id, attempt) for message_id, attempt in rows]
