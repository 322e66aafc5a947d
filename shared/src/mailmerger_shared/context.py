"""Request and correlation ids that follow one piece of work across HTTP and AMQP.

The HTTP middleware sets the correlation id from ``X-Request-ID`` (or makes one); a consumer sets
it from the envelope of the message it handles. Publishers and the JSON log formatter read it.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

# Ids come from clients; accept only short, log-safe ones.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def set_correlation_id(value: str | None) -> None:
    _correlation_id.set(value)


def accept_or_new_id(candidate: str | None) -> str:
    """Keep a client-supplied id when it is safe to log and forward, else make a fresh one."""
    if candidate and _SAFE_ID.match(candidate):
        return candidate
    return secrets.token_hex(16)  # as unique as a uuid4, a quarter of its cost
