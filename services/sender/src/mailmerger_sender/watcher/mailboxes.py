"""The ``mailboxes`` table's statements: enrollment, leases, and a pass's writes.

Invariants:
- A mailbox is enrolled (or its ``watch_until`` moved later) once its account has a ``sent``
  delivery; enrollment reads only the sends since the latest one already enrolled (less
  ``ENROLL_OVERLAP``, for sends committed after a later-stamped one), through the partial index
  ``ix_deliveries_sent_at``, so a pass never scans the ledger. A mailbox whose watch ended is
  deleted at the next enrollment (a later send enrolls it again, and its first pass is a full sync).
- A lease is taken with ``FOR UPDATE SKIP LOCKED`` and lasts until ``leased_until``: while it
  holds, no other replica leases the mailbox. Every write of a pass names the lease it holds
  (``leased_until`` is its token) and raises ``LeaseLost`` when another replica took the mailbox
  over, so the caller's transaction (its staged events included) rolls back.
- ``history_id`` is written only by ``advance``, in the transaction that stages the events found
  before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

# Sends are stamped (``sent_at``) a few milliseconds before their settlement commits; a send whose
# commit lagged behind a later one's is still enrolled if it lagged less than this.
ENROLL_OVERLAP = timedelta(minutes=5)


class LeaseLost(Exception):
    """Another replica holds the mailbox now: this pass's writes must not land."""


@dataclass(slots=True, kw_only=True)
class MailboxLease:
    """A mailbox this replica holds; ``token`` (its ``leased_until``) moves on with each write."""

    account_id: int
    history_id: int | None
    state: str
    failures: int
    token: datetime


# The latest send already enrolled: enrollment reads the sends after it. A statement of its own, so
# that the planner sees the bound as a value (a bound from a subquery made it guess a third of the
# ledger, and plan - and JIT-compile - for that).
_LAST_ENROLLED = text("SELECT max(last_sent_at) FROM sender.mailboxes")

_ENROLL = text(
    """
    WITH sent AS (
        SELECT account_id, max(sent_at) AS last_sent
        FROM sender.deliveries
        WHERE state = 'sent' AND sent_at > :since
        GROUP BY account_id
    )
    INSERT INTO sender.mailboxes AS m (account_id, last_sent_at, watch_until, next_poll_at)
    SELECT account_id, last_sent, last_sent + CAST(:window AS interval), CAST(:now AS timestamptz)
    FROM sent
    ORDER BY account_id
    ON CONFLICT (account_id) DO UPDATE
    SET last_sent_at = EXCLUDED.last_sent_at,
        watch_until = EXCLUDED.watch_until,
        next_poll_at = CASE WHEN m.watch_until <= :now THEN :now ELSE m.next_poll_at END
    WHERE m.last_sent_at < EXCLUDED.last_sent_at
    """
)

# Mailboxes whose watch ended (no send for ``watch_days``), unless a pass still holds one: they
# would sort first in ``ix_mailboxes_next_poll_at`` and every lease would step over them. Keeps the
# latest one, whose ``last_sent_at`` is enrollment's bound.
_FORGET_EXPIRED = text(
    """
    DELETE FROM sender.mailboxes
    WHERE watch_until <= :now AND (leased_until IS NULL OR leased_until <= :now)
      AND last_sent_at < (SELECT max(last_sent_at) FROM sender.mailboxes)
    """
)

_LEASE = text(
    """
    WITH due AS (
        SELECT account_id FROM sender.mailboxes
        WHERE next_poll_at <= :now AND watch_until > :now
          AND (leased_until IS NULL OR leased_until <= :now)
        ORDER BY next_poll_at
        LIMIT :room
        FOR UPDATE SKIP LOCKED
    )
    UPDATE sender.mailboxes m SET leased_until = :lease_until
    FROM due WHERE m.account_id = due.account_id
    RETURNING m.account_id, m.history_id, m.state, m.failures, m.leased_until
    """
)

_ADVANCE = text(
    """
    UPDATE sender.mailboxes
    SET history_id = :history_id, last_synced_at = :now, state = 'watching', last_error = NULL,
        failures = 0, leased_until = :lease_until
    WHERE account_id = :account_id AND leased_until = :token
    """
)

_RENEW = text(
    """
    UPDATE sender.mailboxes SET leased_until = :lease_until
    WHERE account_id = :account_id AND leased_until = :token
    """
)

_RELEASE = text(
    """
    UPDATE sender.mailboxes
    SET state = :state, last_error = :last_error, failures = :failures, next_poll_at = :next_poll_at,
        leased_until = NULL
    WHERE account_id = :account_id AND leased_until = :token
    """
)


async def enroll(session: AsyncSession, *, now: datetime, watch_days: int) -> int:
    """Watch the mailboxes of the accounts that sent since the last enrollment; how many rows
    were added or moved later."""
    window = timedelta(days=watch_days)
    last = (await session.execute(_LAST_ENROLLED)).scalar_one()
    since = (last if last is not None else now - window) - ENROLL_OVERLAP
    result = await session.execute(_ENROLL, {"now": now, "window": window, "since": since})
    await session.execute(_FORGET_EXPIRED, {"now": now})
    return int(result.rowcount)  # type: ignore[attr-defined]


async def lease(
    session: AsyncSession, *, now: datetime, room: int, lease_seconds: float
) -> list[MailboxLease]:
    """Up to ``room`` due mailboxes no other replica holds, held until ``now + lease_seconds``."""
    rows = await session.execute(
        _LEASE, {"now": now, "room": room, "lease_until": now + timedelta(seconds=lease_seconds)}
    )
    return [
        MailboxLease(
            account_id=row.account_id,
            history_id=row.history_id,
            state=row.state,
            failures=row.failures,
            token=row.leased_until,
        )
        for row in rows
    ]


async def advance(
    session: AsyncSession, held: MailboxLease, *, history_id: int | None, now: datetime, lease_seconds: float
) -> None:
    """Store where the next ``history.list`` starts and renew the lease; ``LeaseLost`` if gone."""
    until = now + timedelta(seconds=lease_seconds)
    await _write(
        session,
        held,
        _ADVANCE,
        {"history_id": history_id, "now": now, "lease_until": until},
    )
    held.token, held.history_id = until, history_id


async def renew(session: AsyncSession, held: MailboxLease, *, now: datetime, lease_seconds: float) -> None:
    """Renew the lease (a write that stages events without moving ``history_id``)."""
    until = now + timedelta(seconds=lease_seconds)
    await _write(session, held, _RENEW, {"lease_until": until})
    held.token = until


async def release(
    session: AsyncSession,
    held: MailboxLease,
    *,
    state: str,
    next_poll_at: datetime,
    last_error: str | None = None,
    failures: int = 0,
) -> None:
    """End the pass: the mailbox's state, and when its next pass is due."""
    params = {"state": state, "last_error": last_error, "failures": failures, "next_poll_at": next_poll_at}
    await _write(session, held, _RELEASE, params)


async def _write(
    session: AsyncSession, held: MailboxLease, statement: TextClause, params: Mapping[str, object]
) -> None:
    result = await session.execute(
        statement,
        {**params, "account_id": held.account_id, "token": held.token},
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(f"mailbox {held.account_id} was taken over by another replica")
