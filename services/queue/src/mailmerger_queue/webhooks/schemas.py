"""Request and response shapes of ``/v1/webhooks``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from mailmerger_queue.webhooks.domain import EVENT_TYPES, MAX_DESCRIPTION
from mailmerger_shared.egress import MAX_URL_LENGTH

Url = Annotated[
    str, msgspec.Meta(max_length=MAX_URL_LENGTH, examples=["https://example.com/hooks/mailmerger"])
]
# Checked against the catalogue by the use case, which says which types exist (422), not here (400).
EventTypes = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=64)]],
    msgspec.Meta(max_length=len(EVENT_TYPES), description="any of: " + ", ".join(EVENT_TYPES)),
]
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION)]


class CreateEndpoint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where to send which events; the answer shows the signing secret, this once."""

    url: Url
    events: EventTypes
    description: Description = ""


class UpdateEndpoint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The fields to change; an absent one stays. Enabling again clears the failure record."""

    url: Url | None = None
    events: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = None


class Endpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None  # why the courier disabled it, while it is
    failing_since: datetime | None  # every delivery since has failed
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(Endpoint, frozen=True, kw_only=True):
    """An endpoint and its signing secret: shown on creation and rotation only, never again."""

    secret: str


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    at: datetime
    status_code: int | None  # None: no answer (refused target, timeout, connection error)
    latency_ms: int
    response_excerpt: str | None
    error: str | None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    endpoint_id: int
    event_id: str  # the webhook-id header: receivers deduplicate by it
    event_type: str
    state: str  # pending, delivered or failed
    next_attempt_at: datetime | None  # while pending
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]
    attempts: list[Attempt]


class DeliveryPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Delivery]
    next_cursor: str | None
