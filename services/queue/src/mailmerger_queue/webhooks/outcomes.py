"""Writing what came of webhook attempts: the attempt log, the deliveries' next step, and each
endpoint's failure record (disabled, saying why, once every attempt failed for the window)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.settings import WebhookSettings
from mailmerger_queue.webhooks import domain

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed delivery: the attempt it is about to make, and where to."""

    delivery_id: int
    attempt: int
    schedule_from: int
    event_id: str
    payload: Any
    endpoint_id: int
    user_id: int
    url: str
    secret_sealed: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    job: Job
    at: datetime
    status_code: int | None
    latency_ms: int
    excerpt: str | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# One statement for what every batch does (so a batch of successes, the usual one, is a single
# statement, atomic alone): log every attempt, deliver the answered ones, clear their endpoints'
# failure record. A delivery deleted meanwhile (its endpoint was) is skipped, not a foreign-key
# error that would fail the outcomes written with it.
_LOG_AND_DELIVER = text(
    """
    WITH v AS (
        SELECT * FROM unnest(
            CAST(:ids AS bigint[]), CAST(:attempts AS int[]), CAST(:ats AS timestamptz[]),
            CAST(:statuses AS int[]), CAST(:latencies AS int[]), CAST(:excerpts AS text[]),
            CAST(:errors AS text[]), CAST(:endpoints AS bigint[])
        ) AS v(delivery_id, attempt, at, status_code, latency_ms, excerpt, error, endpoint_id)
    ), logged AS (
        INSERT INTO queue.webhook_attempts
            (delivery_id, attempt, at, status_code, latency_ms, response_excerpt, error)
        SELECT v.delivery_id, v.attempt, v.at, v.status_code, v.latency_ms, v.excerpt, v.error
        FROM v JOIN queue.webhook_deliveries d ON d.id = v.delivery_id
        ON CONFLICT DO NOTHING
    ), delivered AS (
        UPDATE queue.webhook_deliveries d SET state = 'delivered', delivered_at = v.at
        FROM v
        WHERE d.id = v.delivery_id AND d.state = 'pending' AND v.status_code BETWEEN 200 AND 299
    )
    UPDATE queue.webhook_endpoints e SET failing_since = NULL
    WHERE e.failing_since IS NOT NULL
      AND e.id IN (SELECT v.endpoint_id FROM v WHERE v.status_code BETWEEN 200 AND 299)
    """
)

# Only the attempt that holds the lease moves the delivery on: a late outcome of an older one
# (its lease ran out and another courier took the row) leaves the newer attempt alone.
_NOT_DELIVERED = text(
    """
    UPDATE queue.webhook_deliveries d
    SET state = CASE WHEN v.next_at IS NULL THEN 'failed' ELSE 'pending' END,
        next_attempt_at = coalesce(v.next_at, d.next_attempt_at)
    FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS int[]), CAST(:next_ats AS timestamptz[]))
         AS v(id, attempt, next_at)
    WHERE d.id = v.id AND d.attempts = v.attempt AND d.state = 'pending'
    """
)

_FAILING = text(
    """
    UPDATE queue.webhook_endpoints e SET failing_since = coalesce(e.failing_since, v.at)
    FROM unnest(CAST(:ids AS bigint[]), CAST(:ats AS timestamptz[])) AS v(id, at)
    WHERE e.id = v.id AND e.enabled
    RETURNING e.id, e.failing_since
    """
)

_DISABLE = text(
    """
    UPDATE queue.webhook_endpoints e
    SET enabled = false, disabled_reason = v.reason, updated_at = :now
    FROM unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[])) AS v(id, reason)
    WHERE e.id = v.id AND e.enabled
    """
)


async def record_outcomes(
    session: AsyncSession, outcomes: Sequence[Outcome], settings: WebhookSettings
) -> None:
    """Log the attempts, move their deliveries on, and keep their endpoints' failure record.

    When every outcome is a success this is one statement: it may run without a transaction.
    """
    await session.execute(
        _LOG_AND_DELIVER,
        {
            "ids": [o.job.delivery_id for o in outcomes],
            "attempts": [o.job.attempt for o in outcomes],
            "ats": [o.at for o in outcomes],
            "statuses": [o.status_code for o in outcomes],
            "latencies": [o.latency_ms for o in outcomes],
            "excerpts": [o.excerpt for o in outcomes],
            "errors": [o.error for o in outcomes],
            "endpoints": [o.job.endpoint_id for o in outcomes],
        },
    )
    missed = [o for o in outcomes if not o.delivered]
    if not missed:
        return
    schedule = settings.retry_schedule_seconds
    await session.execute(
        _NOT_DELIVERED,
        {
            "ids": [o.job.delivery_id for o in missed],
            "attempts": [o.job.attempt for o in missed],
            "next_ats": [
                domain.next_attempt_at(o.at, o.job.attempt - o.job.schedule_from + 1, schedule)
                for o in missed
            ],
        },
    )
    healthy = {o.job.endpoint_id for o in outcomes if o.delivered}
    last: dict[int, Outcome] = {}
    for o in sorted(missed, key=lambda o: o.at):
        if o.job.endpoint_id not in healthy:
            last[o.job.endpoint_id] = o
    if not last:
        return
    failing = await session.execute(_FAILING, {"ids": list(last), "ats": [o.at for o in last.values()]})
    window = timedelta(seconds=settings.disable_after_failing_seconds)
    to_disable = {
        row.id: domain.disabled_reason(row.failing_since, last[row.id].error or "failed")
        for row in failing
        if row.failing_since <= last[row.id].at - window
    }
    if to_disable:
        now = max(o.at for o in missed)
        await session.execute(
            _DISABLE, {"ids": list(to_disable), "reasons": list(to_disable.values()), "now": now}
        )
        for endpoint_id, reason in to_disable.items():
            log.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)
