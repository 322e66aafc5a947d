"""What the queue's use cases report when they cannot do what was asked: plain exceptions, no HTTP.

The kinds are the kit's (``mailmerger_shared.errors``): the web kit maps each to a problem response
at the edge, and a consumer that meets one returns its message to the queue until the delivery
limit dead-letters it (the consumers here raise none on purpose). The subclasses below add the
facts a client needs to act on the queue's own refusals.
"""

from __future__ import annotations

from mailmerger_shared.errors import (
    Conflict,
    DomainError,
    Invalid,
    NotFound,
    TooLarge,
    Unavailable,
    UpstreamFailed,
)


class MessageTooLarge(Invalid):
    """A message (or a campaign's shared attachments) above Gmail's size limit: 422 with both sizes."""

    def __init__(self, detail: str, *, size: int, limit: int) -> None:
        super().__init__(detail, extra={"size_bytes": size, "limit_bytes": limit})


class RecipientListTooLarge(TooLarge):
    """A campaign's uploaded list with more bytes than the queue reads."""


class ServiceUnavailable(Unavailable):
    """Another service (templates, storage, auth) cannot be reached or failed; retry shortly."""

    def __init__(self, service: str) -> None:
        super().__init__(f"the {service} service is unavailable; retry shortly", retry_after=5)


__all__ = [
    "Conflict",
    "DomainError",
    "Invalid",
    "MessageTooLarge",
    "NotFound",
    "RecipientListTooLarge",
    "ServiceUnavailable",
    "TooLarge",
    "Unavailable",
    "UpstreamFailed",
]
