"""Rules of outgoing webhooks, no I/O: the event types, the secrets, what an attempt's outcome means."""

from __future__ import annotations

import base64
import os
import unicodedata
import uuid
from datetime import datetime, timedelta
from typing import Final

from mailmerger_shared.errors import Invalid

MESSAGE_EVENTS: Final = (
    "message.sent",
    "message.failed",
    # What came back (the mailbox watcher, ``sequences.responses``): the data of message.sent plus
    # ``kind``, ``from`` and ``received_at``.
    "message.bounced",
    "message.replied",
    "message.auto_replied",
)
EVENT_TYPES: Final = (
    *MESSAGE_EVENTS,
    "message.unsubscribed",
    "campaign.launched",
    "campaign.paused",
    "campaign.completed",
)
# Sent on request to one endpoint, whatever it subscribed to (``POST …/test``).
TEST_EVENT: Final = "webhook.test"

MAX_ENDPOINTS_PER_USER: Final = 20
MAX_DESCRIPTION: Final = 200
EXCERPT_CHARS: Final = 500  # of a receiver's answer, kept per attempt
SECRET_PREFIX: Final = "whsec_"  # noqa: S105 (the prefix of every secret, not one)
SECRET_BYTES: Final = 32  # Standard Webhooks: 24 to 64 random bytes


def new_secret() -> bytes:
    return os.urandom(SECRET_BYTES)


def shown_secret(secret: bytes) -> str:
    """The secret as users (and the ``standardwebhooks`` libraries) write it: ``whsec_<base64>``."""
    return SECRET_PREFIX + base64.b64encode(secret).decode()


def new_event_id() -> str:
    """The ``webhook-id`` of one event: the same at every attempt and replay, to every endpoint."""
    return "msg_" + uuid.uuid4().hex


def rfc3339(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def subscribed_events(events: list[str], *, field: str = "events") -> list[str]:
    """``events`` checked (known, at least one) and without repeats, in the catalogue's order."""
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise Invalid(
            f"{field}: unknown event type {unknown[0]!r}; choose among {', '.join(EVENT_TYPES)}",
            extra={"field": field},
        )
    if not events:
        raise Invalid(f"{field}: choose at least one of {', '.join(EVENT_TYPES)}", extra={"field": field})
    return [kind for kind in EVENT_TYPES if kind in events]


def next_attempt_at(at: datetime, attempt_in_schedule: int, schedule: list[float]) -> datetime | None:
    """When to try again after the ``attempt_in_schedule``-th attempt (1-based) failed; None: give up."""
    if attempt_in_schedule > len(schedule):
        return None
    return at + timedelta(seconds=schedule[attempt_in_schedule - 1])


def excerpt(body: bytes) -> str:
    """The start of a receiver's answer, safe to show: decoded leniently, no control characters."""
    text = body[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    cleaned = "".join(
        " " if unicodedata.category(ch).startswith("C") or ch in "\u2028\u2029" else ch for ch in text
    )
    return " ".join(cleaned.split())[:EXCERPT_CHARS]


def disabled_reason(failing_since: datetime, last_error: str) -> str:
    return f"every delivery failed since {rfc3339(failing_since)}; the last one: {last_error}"[:1000]
