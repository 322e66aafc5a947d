"""The ledger's SQL: claim rows, take over a settled claim, write settlements with their events.

Written in batches (see ``writer``): each function here takes many requests and writes them
together, as one statement where it can (the caller may then run it in autocommit). The claim and
the settle are raw SQL over arrays so that each batch is one statement whose text is the same for
any batch size (prepared once; see the comment on each). Which states each statement may move a row
from is the rule in ``states``: the SQL text is built from it, so the rule is written once. The
invariants are in the package's docstring.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_sender.ledger import states
from mailmerger_sender.ledger.settlement import COLUMNS, Settlement
from mailmerger_sender.ledger.states import Delivery
from mailmerger_sender.models import deliveries
from mailmerger_shared import contracts as c

_t = deliveries.c


def _delivery(row: Any) -> Delivery:
    return Delivery(**row._mapping)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimRequest:
    command: c.SendEmail
    command_id: uuid.UUID
    now: datetime
    settles_at: datetime


async def claim_all(session: AsyncSession, requests: Sequence[ClaimRequest]) -> list[tuple[bool, Delivery]]:
    """Claim each request's message for its command: whether it was claimed, and the row.

    A new message is claimed; a ``deferred`` one is claimed by a newer command (another envelope, an
    attempt and a generation at least as high); a ``failed`` or ``unconfirmed`` one by a command of
    a newer generation. Anything else is returned as it stands, for the caller to resolve.
    Requests for the same message are decided one after the other, in order.
    """
    results: dict[int, tuple[bool, Delivery]] = {}
    remaining = list(enumerate(requests))
    while remaining:
        # One statement cannot touch a row twice: a repeated message waits for the next round.
        this_round: dict[int, tuple[int, ClaimRequest]] = {}
        later = []
        for index, request in remaining:
            if request.command.message_id in this_round:
                later.append((index, request))
            else:
                this_round[request.command.message_id] = (index, request)
        claimed = await _insert_or_reclaim(session, [request for _, request in this_round.values()])
        unclaimed = [message_id for message_id in this_round if message_id not in claimed]
        existing = await _rows(session, unclaimed)
        for message_id, (index, _) in this_round.items():
            results[index] = (
                (True, claimed[message_id]) if message_id in claimed else (False, existing[message_id])
            )
        remaining = later
    return [results[index] for index in range(len(requests))]


# A claim for many messages as one statement. Arrays, not a VALUES list: the SQL text is the same
# for any batch size, so PostgreSQL and asyncpg prepare it once (a VALUES list of each new length
# was a new statement to parse and plan). A row claimed again from ``unconfirmed`` remembers when
# its uncertain attempt was claimed (``uncertain_since``), so the resend can look it up first.
_CLAIM = text(
    f"""
        INSERT INTO sender.deliveries AS d
            (message_id, rfc_message_id, account_id, attempt, generation, command_id, state, claimed_at,
             settles_at)
        SELECT r.message_id, r.rfc_message_id, r.account_id, r.attempt, r.generation, r.command_id,
               '{states.SENDING}', r.claimed_at, r.settles_at
        FROM unnest(
            CAST(:message_id AS bigint[]), CAST(:rfc_message_id AS text[]), CAST(:account_id AS bigint[]),
            CAST(:attempt AS integer[]), CAST(:generation AS integer[]), CAST(:command_id AS uuid[]),
            CAST(:claimed_at AS timestamptz[]), CAST(:settles_at AS timestamptz[])
        ) AS r(message_id, rfc_message_id, account_id, attempt, generation, command_id, claimed_at,
               settles_at)
        ON CONFLICT (message_id) DO UPDATE
        SET attempt = excluded.attempt, generation = excluded.generation, command_id = excluded.command_id,
            state = '{states.SENDING}', claimed_at = excluded.claimed_at, settles_at = excluded.settles_at,
            reason = NULL, detail = NULL,
            uncertain_since = CASE WHEN d.state = '{states.UNCONFIRMED}'
                                   THEN coalesce(d.uncertain_since, d.claimed_at)
                                   ELSE d.uncertain_since END
        WHERE (d.state IN {states.sql_list(states.RECLAIMABLE_BY_A_NEWER_COMMAND)}
               AND d.command_id <> excluded.command_id
               AND d.attempt <= excluded.attempt AND d.generation <= excluded.generation)
           OR (d.state IN {states.sql_list(states.RECLAIMABLE_BY_A_NEWER_GENERATION)}
               AND d.generation < excluded.generation)
        RETURNING {", ".join(f"d.{column.name}" for column in deliveries.c)}
        """  # noqa: S608 (the column names and states are the ledger's own)
).columns(*deliveries.c)


async def _insert_or_reclaim(session: AsyncSession, requests: Sequence[ClaimRequest]) -> dict[int, Delivery]:
    rows = await session.execute(
        _CLAIM,
        {
            "message_id": [r.command.message_id for r in requests],
            "rfc_message_id": [r.command.rfc_message_id for r in requests],
            "account_id": [r.command.account_id for r in requests],
            "attempt": [r.command.attempt for r in requests],
            "generation": [r.command.generation for r in requests],
            "command_id": [r.command_id for r in requests],
            "claimed_at": [r.now for r in requests],
            "settles_at": [r.settles_at for r in requests],
        },
    )
    return {row.message_id: _delivery(row) for row in rows}


async def _rows(session: AsyncSession, message_ids: list[int]) -> dict[int, Delivery]:
    if not message_ids:
        return {}
    rows = await session.execute(select(deliveries).where(_t.message_id.in_(message_ids)))
    return {row.message_id: _delivery(row) for row in rows}


async def take_over(
    session: AsyncSession,
    held: Delivery,
    command: c.SendEmail,
    command_id: uuid.UUID,
    *,
    now: datetime,
    settles_at: datetime,
) -> bool:
    """Claim an unresolved row whose earlier claim settled without a trace in the mailbox."""
    result = await session.execute(
        update(deliveries)
        .where(
            _t.message_id == held.message_id,
            _t.command_id == held.command_id,
            _t.state == held.state,
            _t.state.in_(states.SETTLEABLE),
        )
        .values(
            attempt=max(command.attempt, held.attempt),
            generation=max(command.generation, held.generation),
            command_id=command_id,
            state=states.SENDING,
            claimed_at=now,
            settles_at=settles_at,
            reason=None,
            detail=None,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """A write: ``held``'s row takes ``settlement`` (if its claim still holds) and ``events``
    (the settlement's, enveloped) are staged with it; with no ``held`` the events are staged alone."""

    held: Delivery | None
    settlement: Settlement | None = None
    events: list[tuple[c.Envelope, c.Event]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if (self.held is None) != (self.settlement is None):
            raise ValueError("a settlement is written over a held row, and only there")


# Every outcome of a batch and the events they stage, as one statement (arrays, not a VALUES list,
# so the SQL text is fixed and prepared once). One statement is atomic without a transaction
# around it: the caller runs it in autocommit, one round trip. An event is staged with its
# outcome's (message, command) when that row was written, unconditionally when it has none.
_SETTLE_AND_STAGE = text(
    f"""
    WITH settled AS (
        UPDATE sender.deliveries AS d
        SET state = o.state, gmail_id = o.gmail_id, thread_id = o.thread_id, sent_at = o.sent_at,
            reconciled = o.reconciled, reason = o.reason, detail = o.detail
        FROM unnest(
            CAST(:message_id AS bigint[]), CAST(:command_id AS uuid[]), CAST(:state AS text[]),
            CAST(:gmail_id AS text[]), CAST(:thread_id AS text[]), CAST(:sent_at AS timestamptz[]),
            CAST(:reconciled AS boolean[]), CAST(:reason AS text[]), CAST(:detail AS text[])
        ) AS o(message_id, command_id, state, gmail_id, thread_id, sent_at, reconciled, reason, detail)
        WHERE d.message_id = o.message_id AND d.command_id = o.command_id
          AND d.state IN {states.sql_list(states.SETTLEABLE)}
        RETURNING d.message_id, d.command_id
    ), staged AS (
        INSERT INTO sender.outbox (id, tag, body, correlation_id, traceparent, occurred_at)
        SELECT e.id, e.tag, e.body, e.correlation_id, e.traceparent, e.occurred_at
        FROM unnest(
            CAST(:e_message_id AS bigint[]), CAST(:e_command_id AS uuid[]), CAST(:e_id AS uuid[]),
            CAST(:e_tag AS text[]), CAST(:e_body AS bytea[]), CAST(:e_correlation_id AS text[]),
            CAST(:e_traceparent AS text[]), CAST(:e_occurred_at AS timestamptz[])
        ) AS e(message_id, command_id, id, tag, body, correlation_id, traceparent, occurred_at)
        WHERE e.message_id IS NULL
           OR (e.message_id, e.command_id) IN (SELECT message_id, command_id FROM settled)
    )
    SELECT message_id, command_id FROM settled
    """  # noqa: S608 (the states are the ledger's own)
)


async def record_all(session: AsyncSession, outcomes: Sequence[Outcome]) -> list[bool]:
    """Write each outcome whose claim still holds, with its events; which ones were written.

    The row update is a compare-and-set on the claiming command: an outcome from a command that
    lost its claim (another replica reconciled or took the message over) writes nothing, and
    stages nothing.
    """
    settling = [(o.held, o.settlement) for o in outcomes if o.held is not None and o.settlement is not None]
    columns: dict[str, list[Any]] = {
        "message_id": [held.message_id for held, _ in settling],
        "command_id": [held.command_id for held, _ in settling],
        "state": [settlement.state for _, settlement in settling],
    }
    for name in COLUMNS:
        columns[name] = [getattr(settlement, name) for _, settlement in settling]
    events = [(o.held, envelope, event) for o in outcomes for envelope, event in o.events]
    columns |= {
        "e_message_id": [held.message_id if held else None for held, _, _ in events],
        "e_command_id": [held.command_id if held else None for held, _, _ in events],
        "e_id": [envelope.id for _, envelope, _ in events],
        "e_tag": [envelope.tag for _, envelope, _ in events],
        "e_body": [c.encode(event) for _, _, event in events],
        "e_correlation_id": [envelope.correlation_id for _, envelope, _ in events],
        "e_traceparent": [envelope.traceparent for _, envelope, _ in events],
        "e_occurred_at": [envelope.occurred_at for _, envelope, _ in events],
    }
    written = {(row.message_id, row.command_id) for row in await session.execute(_SETTLE_AND_STAGE, columns)}
    return [o.held is None or (o.held.message_id, o.held.command_id) in written for o in outcomes]
