"""The webhook use cases: a user's endpoints, their deliveries, replays and test events.

Every query filters by the owner: another user's endpoint or delivery is NotFound. URLs are
checked against SSRF here (``mailmerger_shared.egress``) and again by the courier at each attempt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.errors import Conflict, NotFound
from mailmerger_queue.models import Record, webhook_attempts, webhook_deliveries, webhook_endpoints
from mailmerger_queue.settings import ComplianceSettings, WebhookSettings
from mailmerger_queue.webhooks import domain, events
from mailmerger_queue.webhooks.schemas import (
    Attempt,
    CreateEndpoint,
    Delivery,
    DeliveryPage,
    Endpoint,
    EndpointWithSecret,
    UpdateEndpoint,
)
from mailmerger_queue.webhooks.sealing import SecretBox
from mailmerger_shared import egress
from mailmerger_shared.pagination import decode_cursor, encode_cursor

e, d, a = webhook_endpoints, webhook_deliveries, webhook_attempts

CURSOR_KIND = "webhook-deliveries"
# One user's endpoint creations are serialised, so two at once cannot pass the limit together.
_LOCK_USER = text("SELECT pg_advisory_xact_lock(hashtext('mailmerger webhook endpoints'), hashtext(:user))")

ENDPOINT = [
    e.c.id,
    e.c.url,
    e.c.description,
    e.c.events,
    e.c.enabled,
    e.c.disabled_reason,
    e.c.failing_since,
    e.c.created_at,
    e.c.updated_at,
]


def _now() -> datetime:
    return datetime.now(UTC)


def _endpoint(row: Record) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        description=row.description,
        events=list(row.events),
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        failing_since=row.failing_since,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Webhooks:
    """Register, change and remove endpoints; list deliveries with their attempts; replay one;
    send a test event. Built once with the webhook settings and the key that seals secrets."""

    def __init__(self, settings: WebhookSettings, compliance: ComplianceSettings) -> None:
        self._policy = egress.EgressPolicy(frozenset(host.lower() for host in settings.allowed_hosts))
        self._box = SecretBox(compliance.key())

    async def create(self, session: AsyncSession, user_id: int, data: CreateEndpoint) -> EndpointWithSecret:
        subscribed = domain.subscribed_events(data.events)
        await egress.resolve(data.url, self._policy, field="url")
        await session.execute(_LOCK_USER, {"user": str(user_id)})
        count = await session.scalar(select(func.count()).where(e.c.user_id == user_id))
        if (count or 0) >= domain.MAX_ENDPOINTS_PER_USER:
            raise Conflict(
                f"you have {domain.MAX_ENDPOINTS_PER_USER} webhook endpoints, the most there may be; "
                "delete one, or subscribe an existing one to more events"
            )
        secret = domain.new_secret()
        now = _now()
        row = (
            await session.execute(
                insert(e)
                .values(
                    user_id=user_id,
                    url=data.url,
                    description=data.description,
                    events=subscribed,
                    secret_sealed=self._box.seal(secret, user_id=user_id),
                    enabled=True,
                    created_at=now,
                    updated_at=now,
                )
                .returning(*ENDPOINT)
            )
        ).one()
        return _with_secret(_endpoint(row), secret)

    async def list_endpoints(self, session: AsyncSession, user_id: int) -> list[Endpoint]:
        rows = await session.execute(select(*ENDPOINT).where(e.c.user_id == user_id).order_by(e.c.id))
        return [_endpoint(row) for row in rows]

    async def get(self, session: AsyncSession, user_id: int, endpoint_id: int) -> Endpoint:
        return _endpoint(await _owned(session, user_id, endpoint_id))

    async def update(
        self, session: AsyncSession, user_id: int, endpoint_id: int, data: UpdateEndpoint
    ) -> Endpoint:
        current = await _owned(session, user_id, endpoint_id, lock=True)
        changes: dict[str, Any] = {}
        if data.url is not None:
            await egress.resolve(data.url, self._policy, field="url")
            changes["url"] = data.url
        if data.events is not None:
            changes["events"] = domain.subscribed_events(data.events)
        if data.description is not None:
            changes["description"] = data.description
        if data.enabled is not None and data.enabled != current.enabled:
            changes["enabled"] = data.enabled
            if data.enabled:  # a fresh start: the failures that disabled it are history
                changes.update(disabled_reason=None, failing_since=None)
        if not changes:
            return _endpoint(current)
        row = (
            await session.execute(
                update(e)
                .where(e.c.id == endpoint_id)
                .values(**changes, updated_at=_now())
                .returning(*ENDPOINT)
            )
        ).one()
        return _endpoint(row)

    async def rotate_secret(
        self, session: AsyncSession, user_id: int, endpoint_id: int
    ) -> EndpointWithSecret:
        """A new signing secret; deliveries from now on are signed with it alone."""
        await _owned(session, user_id, endpoint_id, lock=True)
        secret = domain.new_secret()
        row = (
            await session.execute(
                update(e)
                .where(e.c.id == endpoint_id)
                .values(secret_sealed=self._box.seal(secret, user_id=user_id), updated_at=_now())
                .returning(*ENDPOINT)
            )
        ).one()
        return _with_secret(_endpoint(row), secret)

    async def delete(self, session: AsyncSession, user_id: int, endpoint_id: int) -> None:
        """Remove the endpoint with its deliveries (those pending are never sent)."""
        await _owned(session, user_id, endpoint_id, lock=True)
        await session.execute(e.delete().where(e.c.id == endpoint_id))

    async def deliveries(
        self, session: AsyncSession, user_id: int, endpoint_id: int, *, cursor: str | None, limit: int
    ) -> DeliveryPage:
        """The endpoint's deliveries, newest first, each with its attempts."""
        await _owned(session, user_id, endpoint_id)
        query = select(d).where(d.c.endpoint_id == endpoint_id)
        if cursor is not None:
            query = query.where(d.c.id < decode_cursor(CURSOR_KIND, cursor))
        rows = list(await session.execute(query.order_by(d.c.id.desc()).limit(limit + 1)))
        more = len(rows) > limit
        items = await _with_attempts(session, rows[:limit])
        return DeliveryPage(
            items=items, next_cursor=encode_cursor(CURSOR_KIND, items[-1].id) if more else None
        )

    async def replay(
        self, session: AsyncSession, user_id: int, endpoint_id: int, delivery_id: int
    ) -> Delivery:
        """Deliver the event again, now, under the same event id (a receiver that has it skips
        it); the retry schedule starts over. A delivery waiting for its next attempt is brought
        forward; one whose attempt is in flight right now is left to it (409)."""
        await _owned(session, user_id, endpoint_id)
        # Locked: a courier's claim skips it until this transaction ends.
        row = (
            await session.execute(
                select(d.c.state, d.c.attempts)
                .where(d.c.id == delivery_id, d.c.endpoint_id == endpoint_id)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise NotFound(f"no delivery {delivery_id} of webhook endpoint {endpoint_id}")
        if row.state == "pending" and row.attempts > 0:
            logged = await session.scalar(
                select(func.count()).where(a.c.delivery_id == delivery_id, a.c.attempt == row.attempts)
            )
            if not logged:  # claimed, and its outcome not written yet: a second POST would race it
                raise Conflict(
                    f"delivery {delivery_id} is being attempted right now; replay it once that "
                    "attempt is logged"
                )
        replayed = (
            await session.execute(
                update(d)
                .where(d.c.id == delivery_id)
                .values(state="pending", next_attempt_at=_now(), schedule_from=d.c.attempts + 1)
                .returning(d)
            )
        ).one()
        return (await _with_attempts(session, [replayed]))[0]

    async def send_test(self, session: AsyncSession, user_id: int, endpoint_id: int) -> Delivery:
        """Stage a ``webhook.test`` event for this endpoint alone, due now."""
        endpoint = await _owned(session, user_id, endpoint_id)
        if not endpoint.enabled:
            raise Conflict(
                f"webhook endpoint {endpoint_id} is disabled; enable it (PATCH enabled=true) to send to it"
            )
        now = _now()
        data = {"endpoint_id": endpoint_id, "note": "a test event, sent on request"}
        row = (
            await session.execute(
                insert(d)
                .values(
                    endpoint_id=endpoint_id,
                    event_id=domain.new_event_id(),
                    event_type=domain.TEST_EVENT,
                    payload=events.payload(domain.TEST_EVENT, data, now),
                    state="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
                .returning(d)
            )
        ).one()
        return (await _with_attempts(session, [row]))[0]


async def _owned(session: AsyncSession, user_id: int, endpoint_id: int, *, lock: bool = False) -> Record:
    query = select(*ENDPOINT).where(e.c.id == endpoint_id, e.c.user_id == user_id)
    row = (await session.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id} among yours")
    return row


def _with_secret(endpoint: Endpoint, secret: bytes) -> EndpointWithSecret:
    fields = {name: getattr(endpoint, name) for name in endpoint.__struct_fields__}
    return EndpointWithSecret(**fields, secret=domain.shown_secret(secret))


async def _with_attempts(session: AsyncSession, rows: list[Record]) -> list[Delivery]:
    ids = [row.id for row in rows]
    attempts: dict[int, list[Attempt]] = {delivery_id: [] for delivery_id in ids}
    if ids:
        found = await session.execute(
            select(a).where(a.c.delivery_id.in_(ids)).order_by(a.c.delivery_id, a.c.attempt)
        )
        for att in found:
            attempts[att.delivery_id].append(
                Attempt(
                    attempt=att.attempt,
                    at=att.at,
                    status_code=att.status_code,
                    latency_ms=att.latency_ms,
                    response_excerpt=att.response_excerpt,
                    error=att.error,
                )
            )
    return [
        Delivery(
            id=row.id,
            endpoint_id=row.endpoint_id,
            event_id=row.event_id,
            event_type=row.event_type,
            state=row.state,
            next_attempt_at=row.next_attempt_at if row.state == "pending" else None,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            payload=row.payload,
            attempts=attempts[row.id],
        )
        for row in rows
    ]
