"""What Gmail's answer to ``messages.send`` means for the message and its account. Pure.

Gmail answers "throttled" and "forbidden" with the same 403, so an answer is classified by its
``reason`` (and, for 429, by its message) first and by its status only when the reason is unknown
(shared/GMAIL_FACTS.md section 2.4). A transport failure is classified by the adapter, which alone
knows whether the request left this process (``RequestNotSent``) or not (``Ambiguous``).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec


@dataclass(frozen=True, slots=True)
class Accepted:
    gmail_id: str
    thread_id: str


@dataclass(frozen=True, slots=True)
class Transient:
    """Try the message again later; ``not_before`` is Gmail's own ``Retry-After``, if any."""

    reason: str
    detail: str
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class AccountThrottled:
    """Gmail refuses the account as a whole until ``until``: park the account, defer the message."""

    reason: str
    detail: str
    until: datetime


@dataclass(frozen=True, slots=True)
class Unauthorized:
    """The access token was refused: refresh it once, then the account needs reconnecting."""

    detail: str


@dataclass(frozen=True, slots=True)
class ReconnectRequired:
    """The grant cannot send (scopes missing): only the user reconnecting the account helps."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Permanent:
    """Sending this message again cannot succeed."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """The request may have reached Gmail and its answer is unknown."""

    detail: str


Outcome = Accepted | Transient | AccountThrottled | Unauthorized | ReconnectRequired | Permanent | Ambiguous


class _ErrorItem(msgspec.Struct):
    reason: str = ""
    message: str = ""


class _Error(msgspec.Struct):
    code: int = 0
    message: str = ""
    errors: list[_ErrorItem] = []


class _ErrorBody(msgspec.Struct):
    error: _Error


class _MessageRef(msgspec.Struct):
    id: str
    threadId: str  # Gmail's JSON name


@dataclass(frozen=True, slots=True)
class ClassifyPolicy:
    """The pauses Gmail leaves to us when it names no time."""

    mail_sending_pause: timedelta
    daily_limit_pause: timedelta


# ``accessNotConfigured`` is the project's setup, not the message's fault: operators fix it, and
# failing every queued message meanwhile would lose them.
_TRANSIENT_REASONS = frozenset(
    {"backendError", "internalError", "rateLimitExceeded", "userRateLimitExceeded", "accessNotConfigured"}
)
_PERMANENT_REASONS = frozenset(
    {"failedPrecondition", "domainPolicy", "badRequest", "invalid", "invalidArgument"}
)
_RETRY_AFTER_TEXT = re.compile(r"Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)")


def classify_answer(
    status: int, body: bytes, retry_after: str | None, *, now: datetime, policy: ClassifyPolicy
) -> Outcome:
    """Classify one HTTP answer of ``messages.send``."""
    if 200 <= status < 300:
        try:
            ref = msgspec.json.decode(body, type=_MessageRef)
        except (msgspec.DecodeError, msgspec.ValidationError):
            # Gmail took the message, but we cannot tell which one it made: as good as no answer.
            return Ambiguous(f"{status} answer without a message id")
        return Accepted(gmail_id=ref.id, thread_id=ref.threadId)
    reason, message = _reason_of(body)
    detail = f"{status} {reason or 'error'}: {message}".strip()
    not_before = _retry_after_header(retry_after, now)
    if status == 401:
        return Unauthorized(detail)
    if status == 429 and "(Mail sending)" in message:
        until = _retry_after_text(message) or (now + policy.mail_sending_pause)
        return AccountThrottled("mail_sending_limit", detail, until)
    if reason == "dailyLimitExceeded":
        return AccountThrottled(reason, detail, not_before or now + policy.daily_limit_pause)
    if reason == "insufficientPermissions":
        return ReconnectRequired(reason, detail)
    if reason in _TRANSIENT_REASONS or status == 429 or status >= 500:
        return Transient(reason or f"http_{status}", detail, not_before)
    if reason in _PERMANENT_REASONS or 400 <= status < 500:
        return Permanent(reason or f"http_{status}", detail)
    return Transient(reason or f"http_{status}", detail, not_before)


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random) -> timedelta:
    """Exponential backoff with jitter for the ``attempt``-th try: in [d/2, d], d = base * 2^(n-1).

    Never below ``base`` (Gmail: "starting at least one second after the error").
    """
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return timedelta(seconds=max(base, rng.uniform(ceiling / 2, ceiling)))


def _reason_of(body: bytes) -> tuple[str, str]:
    try:
        error = msgspec.json.decode(body, type=_ErrorBody).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "", body[:200].decode("utf-8", "replace")
    first = error.errors[0] if error.errors else _ErrorItem()
    return first.reason, error.message or first.message


def _retry_after_text(message: str) -> datetime | None:
    found = _RETRY_AFTER_TEXT.search(message)
    if found is None:
        return None
    return datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))


def _retry_after_header(value: str | None, now: datetime) -> datetime | None:
    """``Retry-After`` in seconds (Google sends seconds; an HTTP date is ignored)."""
    if value is None or not value.strip().isdigit():
        return None
    return now + timedelta(seconds=int(value.strip()))
