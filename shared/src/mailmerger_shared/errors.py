"""What a use case reports when it cannot do what was asked: plain exceptions, no HTTP.

Domain and service code raises these (or a service's own subclasses in its ``errors.py``); each
kind says what happened in the domain's terms, and ``detail`` says what to change. The web kit maps
each kind to a problem response at the edge (``web.problems.DOMAIN_STATUS``), the broker consumers
to dead-letter (a message that can never be handled) or retry (``Unavailable``). Nothing here knows a
status code, so a domain module never imports the web kit (cosmicpython's ``InvalidSku``, turned
into a 400 only in its Flask entry point).
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error a use case reports on purpose.

    ``extra`` adds named facts for the client (``field``, ``reason``, ids); ``retry_after`` is in
    seconds, for what passes with time; ``title`` names the error where the kind's own name would
    say too little (e.g. "Invalid link"), and a subclass may name it once as ``default_title``.
    """

    default_title: ClassVar[str | None] = None

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        retry_after: int | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.retry_after = retry_after
        self.title = title or self.default_title


class Malformed(DomainError):
    """The request cannot be understood as it is (a bad cursor, a form that is not one)."""


class Invalid(DomainError):
    """Understood, but a value cannot be used: ``extra["field"]`` names it where there is one."""


class Unauthenticated(DomainError):
    """Nobody, or nobody we can tell, asked: sign in (again)."""


class Refused(DomainError):
    """The caller may not do this, whoever they are."""


class NotFound(DomainError):
    """The thing does not exist, or is not the caller's (the same answer, so ids reveal nothing)."""


class Conflict(DomainError):
    """The thing's present state does not allow it (already sent, already exists, still in use)."""


class TooLarge(DomainError):
    """More bytes than allowed."""


class Unsupported(DomainError):
    """Content of a type this service does not take (a file that is not a PDF, a body not a form)."""


class TooManyRequests(DomainError):
    """Too many attempts in a window; ``retry_after`` says when to try again."""


class UpstreamFailed(DomainError):
    """A service we depend on answered, but not as it should (Google, S3)."""


class Unavailable(DomainError):
    """A dependency is down or not configured; trying later may work."""
