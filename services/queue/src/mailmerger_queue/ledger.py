"""Writing the ledger: creating messages and moving them between states, always with a transition.

The rule of a move is written once (``_moving`` and ``_recorded``): it locks the rows it moves,
changes them only if they are still in one of the allowed ``from`` states, and records one
transition per moved row in the same statement, so concurrent moves (a cancel racing a dispatch,
an event delivered twice) each see the other's result and at most one of them wins. ``move`` is
that rule for the messages matching a condition; ``move_to_sent`` is the same rule for the hottest
transition, with one row of values per message, prepared once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnElement,
    DateTime,
    FromClause,
    Insert,
    Text,
    any_,
    bindparam,
    cast,
    column,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.domain import State
from mailmerger_queue.models import attempts, campaigns, messages, transitions

m = messages
_INSTANT = DateTime(timezone=True)


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


def _moving(
    where: ColumnElement[bool],
    *,
    sources: ColumnElement[bool],
    target: State,
    now: ColumnElement[datetime],
    values: Mapping[str, Any],
    given: FromClause | None = None,
    returning: Sequence[ColumnElement[Any]] = (),
) -> CTE:
    """The CTE ``moved`` (``id``, ``from_state``, ``attempt``, then ``returning``): the messages
    matching ``where`` whose state satisfies ``sources``, locked, then set to ``target`` with
    ``values``. ``given`` (keyed by ``id``) holds per-message values; only its messages move."""
    locked = select(m.c.id, m.c.state).where(where, sources).with_for_update(of=m)
    if given is not None:
        locked = locked.join_from(m, given, given.c.id == m.c.id)
    old = locked.cte("old")
    changed = update(m).where(m.c.id == old.c.id)
    if given is not None:
        changed = changed.where(given.c.id == old.c.id)
    return (
        changed.values(state=target.value, updated_at=now, **values)
        .returning(m.c.id, old.c.state.label("from_state"), m.c.attempt, *returning)
        .cte("moved")
    )


def _recorded(
    moved: CTE, *, target: State, reason: ColumnElement[str], now: ColumnElement[datetime]
) -> Insert:
    """The transition of every moved message, recorded in the statement that moved it."""
    return insert(transitions).from_select(
        ["message_id", "at", "from_state", "to_state", "reason", "attempt"],
        select(moved.c.id, now, moved.c.from_state, literal(target.value), reason, moved.c.attempt),
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
    at = literal(now, _INSTANT)
    moved = _moving(
        where,
        sources=m.c.state.in_([s.value for s in sources]),
        target=target,
        now=at,
        values=values or {},
    )
    recorded = _recorded(moved, target=target, reason=literal(reason), now=at).returning(
        transitions.c.message_id, transitions.c.from_state
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


def _move_to_sent_statement() -> Insert:
    """``move`` to ``sent`` for many messages, each with its own values (``Sent``, passed as one
    array per field), as one statement; and the attempt that sent each is closed as sent, and its
    campaign's run of failures ends (only a campaign that had failures is written)."""
    now = bindparam("now", type_=_INSTANT)
    sent = (
        select(
            func.unnest(
                cast(bindparam("ids"), ARRAY(BigInteger)),
                cast(bindparam("gmail_ids"), ARRAY(Text)),
                cast(bindparam("thread_ids"), ARRAY(Text)),
                cast(bindparam("sent_ats"), ARRAY(_INSTANT)),
                cast(bindparam("reasons"), ARRAY(Text)),
            )
            .table_valued(
                column("id", BigInteger),
                column("gmail_id", Text),
                column("thread_id", Text),
                column("sent_at", _INSTANT),
                column("reason", Text),
            )
            .render_derived(name="s")
        )
    ).cte("sent")
    moved = _moving(
        true(),
        sources=m.c.state == any_(cast(bindparam("sources"), ARRAY(Text))),
        target=State.SENT,
        now=now,
        values={
            "gmail_id": sent.c.gmail_id,
            "thread_id": sent.c.thread_id,
            "sent_at": sent.c.sent_at,
            "outcome_reason": None,
            "outcome_detail": None,
        },
        given=sent,
        returning=[m.c.campaign_id, sent.c.reason],
    )
    a, cp = attempts, campaigns
    attempt_closed = (
        update(a)
        .where(a.c.message_id == moved.c.id, a.c.attempt == moved.c.attempt)
        .values(outcome=State.SENT.value, outcome_at=now, reason=None, detail=None)
        .cte("attempt_closed")
    )
    failures_ended = (
        update(cp)
        .where(cp.c.id.in_(select(moved.c.campaign_id)), cp.c.consecutive_failures > 0)
        .values(consecutive_failures=0)
        .cte("failures_ended")
    )
    return (
        _recorded(moved, target=State.SENT, reason=moved.c.reason, now=now)
        .add_cte(attempt_closed, failures_ended)
        .returning(transitions.c.message_id, transitions.c.attempt)
    )


# Built once: it is the same for every batch (only its parameters change), so EmailSent batches,
# the hottest path, neither build nor compile a statement.
_MOVE_TO_SENT = _move_to_sent_statement()


async def move_to_sent(
    session: AsyncSession, sent: Sequence[Sent], *, sources: Iterable[State], now: datetime
) -> list[tuple[int, int]]:
    """Move each message of ``sent`` (distinct ids) that is in ``sources`` to ``sent``, closing the
    attempt that sent it. One statement, atomic alone: callers may run it without a transaction.

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
