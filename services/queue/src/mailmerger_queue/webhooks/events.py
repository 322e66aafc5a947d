"""Staging webhook events in the transaction of the change they report (the courier's outbox).

Whoever changes state calls a function here inside its own transaction: the deliveries commit with
the change or not at all, so no event is lost and none is announced for a change that rolled back.
One ``webhook_deliveries`` row per (event, endpoint); the event's id (``webhook-id``) is shared by
its rows and kept across attempts and replays, so receivers deduplicate by it.

The outcome path stages ``message.sent`` for thousands of messages a second, nearly always for
users with no endpoint: :func:`stage_message_events` is one INSERT … SELECT whose cost, for a user
with none, is an index probe of ``webhook_endpoints.user_id`` per message (no row is written).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.webhooks.domain import EVENT_TYPES, MESSAGE_EVENTS, TEST_EVENT, new_event_id, rfc3339

_SINGLE_EVENTS = frozenset(EVENT_TYPES) - frozenset(MESSAGE_EVENTS)

# The batch is looked up by primary key first (MATERIALIZED: the planner may not turn it into a
# scan of a user's messages), then kept only for users with a subscribed endpoint (an index probe
# each); only those get an event id (once per message, whatever their endpoints) and their columns.
_STAGE_MESSAGE_EVENTS = text(
    """
    WITH batch AS MATERIALIZED (
        SELECT m.id, m.user_id FROM queue.messages m WHERE m.id = ANY(CAST(:message_ids AS bigint[]))
    ), hooked AS MATERIALIZED (
        SELECT b.id, b.user_id, 'msg_' || replace(gen_random_uuid()::text, '-', '') AS event_id
        FROM batch b
        WHERE EXISTS (
            SELECT 1 FROM queue.webhook_endpoints x
            WHERE x.user_id = b.user_id AND x.enabled AND CAST(:event_type AS text) = ANY(x.events)
        )
    )
    INSERT INTO queue.webhook_deliveries
        (endpoint_id, event_id, event_type, payload, state, attempts, next_attempt_at, created_at)
    SELECT e.id, h.event_id, CAST(:event_type AS text),
           jsonb_build_object(
               'type', CAST(:event_type AS text),
               'timestamp', CAST(:timestamp AS text),
               'data', jsonb_build_object(
                   'message_id', m.id,
                   'campaign_id', m.campaign_id,
                   'account_id', m.account_id,
                   'recipient', m.to_addrs[1],
                   'to', to_jsonb(m.to_addrs),
                   'rfc_message_id', m.rfc_message_id,
                   'gmail_id', m.gmail_id,
                   'thread_id', m.thread_id,
                   'state', m.state,
                   'reason', m.outcome_reason,
                   'detail', m.outcome_detail
               ) || CAST(:extra AS jsonb)
           ),
           'pending', 0, CAST(:now AS timestamptz), CAST(:now AS timestamptz)
    FROM hooked h
    JOIN queue.messages m ON m.id = h.id
    JOIN queue.webhook_endpoints e
      ON e.user_id = h.user_id AND e.enabled AND CAST(:event_type AS text) = ANY(e.events)
    """
)

_STAGE_EVENT = text(
    """
    INSERT INTO queue.webhook_deliveries
        (endpoint_id, event_id, event_type, payload, state, attempts, next_attempt_at, created_at)
    SELECT e.id, CAST(:event_id AS text), CAST(:event_type AS text), CAST(:payload AS jsonb), 'pending', 0,
           CAST(:now AS timestamptz), CAST(:now AS timestamptz)
    FROM queue.webhook_endpoints e
    WHERE e.user_id = CAST(:user_id AS bigint) AND e.enabled AND CAST(:event_type AS text) = ANY(e.events)
    """
)


async def stage_message_events(
    session: AsyncSession,
    event_type: str,
    message_ids: list[int],
    now: datetime,
    *,
    extra: dict[str, Any] | None = None,
) -> None:
    """Stage ``event_type`` (``message.sent``, ``.failed``, ``.bounced``, ``.replied``,
    ``.auto_replied``) for each message, as the messages are in this transaction, to their users'
    subscribed endpoints; ``extra`` is added to every event's data (a response's ``kind``…)."""
    if event_type not in MESSAGE_EVENTS:
        raise ValueError(f"{event_type!r} is not a message event; use stage_event")
    if not message_ids:
        return
    await session.execute(
        _STAGE_MESSAGE_EVENTS,
        {
            "event_type": event_type,
            "timestamp": rfc3339(now),
            "message_ids": message_ids,
            "now": now,
            "extra": msgspec.json.encode(extra or {}).decode(),
        },
    )


async def stage_event(
    session: AsyncSession, user_id: int, event_type: str, data: dict[str, Any], now: datetime
) -> str:
    """Stage one event of ``user_id`` (``campaign.*``, ``message.unsubscribed``) to the user's
    subscribed endpoints; its event id. ``data`` holds ids and facts, never a message's content."""
    if event_type not in _SINGLE_EVENTS:
        raise ValueError(f"{event_type!r} is not a single event; use stage_message_events")
    event_id = new_event_id()
    await session.execute(
        _STAGE_EVENT,
        {
            "event_id": event_id,
            "event_type": event_type,
            "payload": msgspec.json.encode(payload(event_type, data, now)).decode(),
            "user_id": user_id,
            "now": now,
        },
    )
    return event_id


def payload(event_type: str, data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A Standard Webhooks payload: ``{"type", "timestamp", "data"}``."""
    return {"type": event_type, "timestamp": rfc3339(now), "data": data}


__all__ = ["EVENT_TYPES", "TEST_EVENT", "payload", "stage_event", "stage_message_events"]
