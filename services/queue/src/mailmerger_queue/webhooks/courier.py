"""The courier: delivers staged webhook events, at least once, signed, retried on a schedule.

Each round claims due deliveries with a lease, in one short transaction (``FOR UPDATE SKIP
LOCKED``; ``attempts + 1``; due again at ``now + timeout + margin``), so any number of replicas
never POST one row at the same time. It claims no more than it can start at once (``concurrency``
in all, ``per_endpoint_concurrency`` per endpoint, counting what is still in flight), so a claimed
row's lease is never spent waiting its turn. Each POST goes to the address its URL resolves to now
(``mailmerger_shared.egress``: a target that turned private fails the attempt, redirects are not
followed). Outcomes are written in group commits (one transaction for those that finished
together): a 2xx delivers; anything else logs the attempt and sets the next one from
``retry_schedule_seconds``, or gives the delivery up after the last. An endpoint all of whose
attempts failed for ``disable_after_failing_seconds`` is disabled, saying why.

A crash after a POST and before its outcome is written costs one more attempt when the lease
ends: delivery is at least once, and receivers deduplicate by ``webhook-id``. An outcome written
after its lease was taken over changes nothing but the log (it names the attempt it answers).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import msgspec
from cryptography.exceptions import InvalidTag
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from mailmerger_queue.settings import ComplianceSettings, WebhookSettings
from mailmerger_queue.webhooks import domain
from mailmerger_queue.webhooks.outcomes import Job, Outcome, record_outcomes
from mailmerger_queue.webhooks.sealing import SecretBox
from mailmerger_shared import egress
from mailmerger_shared.batching import Batcher
from mailmerger_shared.db import autocommit, transaction

log = logging.getLogger(__name__)

USER_AGENT = "MailMerger-Webhooks/1"
LEASE_MARGIN_SECONDS = 30.0  # beyond the timeout: DNS, and writing the outcome
# After a request ends, how long to let others end too before claiming for them all at once.
GATHER_SECONDS = 0.005
SCAN_FACTOR = 4  # due rows looked at per row claimed, so one busy endpoint does not hide the others


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


# The candidates are looked at without locks, ranked per endpoint; the ones an endpoint has room
# for (``per_endpoint`` less what this courier has in flight to it) are then locked, skipping any
# another courier holds, and leased. Endpoints with no room are not looked at: a backlog of one
# (a slow receiver, a large campaign) never fills the window the others are found in.
_CLAIM = text(
    """
    WITH busy AS (
        SELECT * FROM unnest(CAST(:busy_ids AS bigint[]), CAST(:busy_counts AS int[])) AS b(endpoint_id, n)
    ), candidates AS (
        SELECT d.id, d.endpoint_id,
               row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS rank
        FROM (
            SELECT d.id, d.endpoint_id, d.next_attempt_at
            FROM queue.webhook_deliveries d
            JOIN queue.webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
            WHERE d.state = 'pending' AND d.next_attempt_at <= :now
              AND d.endpoint_id <> ALL(CAST(:full_ids AS bigint[]))
            ORDER BY d.next_attempt_at, d.id
            LIMIT :scan
        ) d
    ), picked AS (
        SELECT d.id
        FROM queue.webhook_deliveries d
        JOIN candidates c ON c.id = d.id
        LEFT JOIN busy b ON b.endpoint_id = c.endpoint_id
        WHERE c.rank <= :per_endpoint - coalesce(b.n, 0)
          AND d.state = 'pending' AND d.next_attempt_at <= :now
        ORDER BY d.next_attempt_at, d.id
        LIMIT :room
        FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE queue.webhook_deliveries d
    SET attempts = d.attempts + 1, next_attempt_at = :lease_until
    FROM picked, queue.webhook_endpoints e
    WHERE d.id = picked.id AND e.id = d.endpoint_id
    RETURNING d.id, d.attempts, d.schedule_from, d.event_id, d.payload, d.endpoint_id,
              e.user_id, e.url, e.secret_sealed
    """
)


class Courier:
    """Claims, posts and records webhook deliveries; ``run`` until cancelled, or ``deliver_due`` once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: WebhookSettings,
        compliance: ComplianceSettings,
        client: httpx.AsyncClient,
        *,
        clock: Clock | None = None,
        idle_seconds: float = 1.0,
        busy_seconds: float = 0.2,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._client = client
        self._clock = clock or SystemClock()
        self._idle = idle_seconds
        self._busy = busy_seconds
        self._policy = egress.EgressPolicy(frozenset(host.lower() for host in settings.allowed_hosts))
        self._box = SecretBox(compliance.key())
        self._signers: dict[tuple[int, bytes], Webhook] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # until their outcome is written
        self._posting: Counter[int] = Counter()  # requests in flight, per endpoint
        self._slot_freed = asyncio.Event()
        self._recorder: Batcher[Outcome, None] = Batcher(self._record, max_size=500)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until cancelled (or ``stop`` is set); deliveries in flight are then abandoned to
        their leases (another attempt later, never a lost event)."""
        stopping = asyncio.ensure_future((stop or asyncio.Event()).wait())
        try:
            while not stopping.done():
                self._slot_freed.clear()  # before claiming: a request that ends meanwhile counts
                try:
                    claimed, room = await self._start_due()
                except Exception:
                    log.exception("cannot claim webhook deliveries; trying again shortly")
                    claimed, room = 0, 1
                if room and claimed == room:
                    continue  # more may be due right now
                # A request that ends makes room (for its endpoint too): claim again then, rather
                # than after the pause, once the requests ending about then have ended too.
                waits: set[asyncio.Future[Any]] = {stopping}
                if self._posting:
                    waits.add(asyncio.ensure_future(self._slot_freed.wait()))
                pause = self._busy if claimed or self._posting else self._idle
                done, pending = await asyncio.wait(waits, timeout=pause, return_when=asyncio.FIRST_COMPLETED)
                for waiter in pending - {stopping}:
                    waiter.cancel()
                if done and stopping not in done:
                    await asyncio.sleep(GATHER_SECONDS)
        finally:
            stopping.cancel()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def deliver_due(self) -> int:
        """One round: start what is due (as much as there is room for) and wait until every
        delivery started is recorded. The number started."""
        started, _ = await self._start_due()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        return started

    async def _start_due(self) -> tuple[int, int]:
        """Claim and start due deliveries; (started, room there was)."""
        room = self._settings.concurrency - self._posting.total()
        if room <= 0:
            return 0, 0
        jobs = await self._claim(room)
        for job in jobs:
            self._posting[job.endpoint_id] += 1
            task = asyncio.create_task(self._deliver(job))
            self._tasks.add(task)
            task.add_done_callback(self._recorded)
        return len(jobs), room

    async def _deliver(self, job: Job) -> None:
        try:
            outcome = await self._attempt(job)
        finally:
            # The endpoint's slot is free once its request ended; the lease covers the writing.
            self._posting[job.endpoint_id] -= 1
            if self._posting[job.endpoint_id] <= 0:
                del self._posting[job.endpoint_id]
            self._slot_freed.set()
        try:
            await self._recorder.submit(outcome)
        except Exception:
            # The lease runs out and another attempt is made: at least once, never lost.
            log.exception("the outcome of webhook delivery %s was not written", job.delivery_id)

    def _recorded(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)

    async def _claim(self, room: int) -> list[Job]:
        now = self._clock.now()
        lease = timedelta(seconds=self._settings.timeout_seconds + LEASE_MARGIN_SECONDS)
        busy = list(self._posting.items())
        per_endpoint = self._settings.per_endpoint_concurrency
        # One statement (lock, lease, read back): its own transaction, without BEGIN and COMMIT.
        async with autocommit(self._sessions) as session:
            rows = await session.execute(
                _CLAIM,
                {
                    "busy_ids": [endpoint for endpoint, _ in busy],
                    "busy_counts": [count for _, count in busy],
                    "full_ids": [endpoint for endpoint, count in busy if count >= per_endpoint],
                    "now": now,
                    "scan": room * SCAN_FACTOR,
                    "per_endpoint": per_endpoint,
                    "room": room,
                    "lease_until": now + lease,
                },
            )
            return [
                Job(
                    delivery_id=row.id,
                    attempt=row.attempts,
                    schedule_from=row.schedule_from,
                    event_id=row.event_id,
                    payload=row.payload,
                    endpoint_id=row.endpoint_id,
                    user_id=row.user_id,
                    url=row.url,
                    secret_sealed=row.secret_sealed,
                )
                for row in rows
            ]

    async def _attempt(self, job: Job) -> Outcome:
        """POST the job's event once; what came of it (never raises for the receiver's doing)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeout = self._settings.timeout_seconds
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(timeout):
                target = await egress.resolve(job.url, self._policy)
                body = msgspec.json.encode(job.payload)
                at = self._clock.now()
                headers = {
                    "content-type": "application/json",
                    "user-agent": USER_AGENT,
                    "webhook-id": job.event_id,
                    "webhook-timestamp": str(int(at.timestamp())),
                    "webhook-signature": self._signer(job).sign(job.event_id, at, body),
                }
                response = await egress.post(
                    self._client, target, content=body, headers=headers, timeout=timeout
                )
            status = response.status_code
            excerpt = domain.excerpt(response.content) or None
            if 300 <= status < 400:
                error = f"answered {status}, a redirect: redirects are not followed, give the final URL"
            elif not 200 <= status < 300:
                error = f"answered {status}"
        except egress.RefusedTarget as exc:
            error = f"refused target: {exc.detail}"
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except httpx.HTTPError as exc:
            error = _describe(exc)
        except InvalidTag:
            error = (
                "the endpoint's secret does not open under this key (was MM_COMPLIANCE_SECRET_KEY changed?)"
            )
        except Exception as exc:  # ours, not the receiver's: logged, and the attempt counts as failed
            log.exception("webhook delivery %s: attempt %s failed here", job.delivery_id, job.attempt)
            error = f"not sent: an error of ours ({type(exc).__name__}); it is retried"
        return Outcome(
            job=job,
            at=self._clock.now(),
            status_code=status,
            latency_ms=round((loop.time() - started) * 1000),
            excerpt=excerpt,
            error=error,
        )

    def _signer(self, job: Job) -> Webhook:
        key = (job.endpoint_id, job.secret_sealed)
        signer = self._signers.get(key)
        if signer is None:
            if len(self._signers) > 10_000:
                self._signers.clear()
            signer = Webhook(self._box.open(job.secret_sealed, user_id=job.user_id))
            self._signers[key] = signer
        return signer

    async def _record(self, outcomes: list[Outcome]) -> list[Exception | None]:
        """Write the outcomes that finished together in one transaction or, if that fails, each in
        a transaction of its own (so one that cannot be written fails alone)."""
        # Only successes (the usual batch) are one statement, atomic alone: no BEGIN and COMMIT.
        unit = autocommit if all(o.delivered for o in outcomes) else transaction
        try:
            async with unit(self._sessions) as session:
                await record_outcomes(session, outcomes, self._settings)
        except Exception:
            if len(outcomes) == 1:
                raise
            return [await self._record_alone(outcome) for outcome in outcomes]
        return [None] * len(outcomes)

    async def _record_alone(self, outcome: Outcome) -> Exception | None:
        try:
            async with transaction(self._sessions) as session:
                await record_outcomes(session, [outcome], self._settings)
        except Exception as exc:
            return exc
        return None


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect: {exc}" if str(exc) else "could not connect"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def http_client(
    settings: WebhookSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The courier's one client: pooled up to ``concurrency``, no proxy from the environment (a proxy
    would connect to the URL's name, not to the checked address)."""
    limits = httpx.Limits(
        max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency
    )
    return httpx.AsyncClient(
        limits=limits, trust_env=False, transport=transport, headers={"user-agent": USER_AGENT}
    )


async def run_courier(
    sessions: async_sessionmaker[AsyncSession],
    webhook_settings: WebhookSettings,
    compliance_settings: ComplianceSettings,
    *,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Deliver webhook events until cancelled or ``stop`` is set (a background task of a worker);
    any number of replicas may run."""
    async with http_client(webhook_settings, transport) as client:
        courier = Courier(sessions, webhook_settings, compliance_settings, client, clock=clock)
        await courier.run(stop)
