"""What Gmail's answer to ``messages.send`` means for the message and its account. Pure.

Gmail answers "throttled" and "forbidden" with the same 403, so an answer is classified by its
``reason`` (and, for 429, by its message) first and by its status only when the reason is unknown
(shared/GMAIL_FACTS.md section 2.4). A transport failure is classified by the adapter, which alone
knows whether the request left this process (``RequestNotSent``) or not (``Ambiguous``).

Every time Google names for a retry is honoured, whichever way it names it: a ``Retry-After``
header (seconds or an HTTP date), a "Retry after <RFC 3339 time>" in the message (GMAIL_FACTS
2.5b), or a ``RetryInfo.retryDelay`` detail; the latest of them wins. A per-user or per-project
quota refusal ("User-rate limit exceeded", ``userRateLimitExceeded``, ``rateLimitExceeded``,
``RESOURCE_EXHAUSTED``) throttles the whole account, briefly when Google names no time: the
account's next sends would only be refused too. Only "too many concurrent requests" stays a
refusal of the one message.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

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


class _Detail(msgspec.Struct):
    type: str = msgspec.field(default="", name="@type")
    retryDelay: str = ""  # google.rpc.RetryInfo, a Duration in JSON: "30s", "1.5s"


class _Error(msgspec.Struct):
    code: int = 0
    message: str = ""
    status: str = ""
    errors: list[_ErrorItem] = []
    details: list[_Detail] = []


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
    # A per-minute quota refusal: long enough for Gmail's moving minute to make room.
    rate_limit_pause: timedelta


# ``accessNotConfigured`` is the project's setup, not the message's fault: operators fix it, and
# failing every queued message meanwhile would lose them.
_TRANSIENT_REASONS = frozenset({"backendError", "internalError", "accessNotConfigured"})
_QUOTA_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_PERMANENT_REASONS = frozenset(
    {"failedPrecondition", "domainPolicy", "badRequest", "invalid", "invalidArgument"}
)
_RETRY_AFTER_TEXT = re.compile(
    r"Retry after\s+(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)", re.IGNORECASE
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)s")


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
    error = _error_of(body)
    reason, message = _reason_of(error, body)
    detail = f"{status} {reason or 'error'}: {message}".strip()
    not_before = _latest(
        _retry_after_header(retry_after, now),
        _retry_after_text(message, error),
        _retry_delay(error, now),
    )
    if status == 401:
        return Unauthorized(detail)
    if status == 429 and "(Mail sending)" in message:
        return AccountThrottled("mail_sending_limit", detail, not_before or now + policy.mail_sending_pause)
    if reason == "dailyLimitExceeded":
        return AccountThrottled(reason, detail, not_before or now + policy.daily_limit_pause)
    if reason == "insufficientPermissions":
        return ReconnectRequired(reason, detail)
    if _quota_refusal(status, reason, message, error):
        return AccountThrottled(reason or "rate_limited", detail, not_before or now + policy.rate_limit_pause)
    if reason in _TRANSIENT_REASONS or reason in _QUOTA_REASONS or status == 429 or status >= 500:
        return Transient(reason or f"http_{status}", detail, not_before)
    if reason in _PERMANENT_REASONS or 400 <= status < 500:
        return Permanent(reason or f"http_{status}", detail)
    return Transient(reason or f"http_{status}", detail, not_before)


def _quota_refusal(status: int, reason: str, message: str, error: _Error | None) -> bool:
    """A per-user or per-project quota refusal (of the account, not of this one message)."""
    if "concurrent" in message.lower():
        return False  # too many calls at once: this call's problem, not the account's quota
    if reason in _QUOTA_REASONS:
        return True
    exhausted = error is not None and error.status == "RESOURCE_EXHAUSTED"
    return status == 429 and (exhausted or "rate limit exceeded" in message.lower())


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random) -> timedelta:
    """Exponential backoff with jitter for the ``attempt``-th try: in [d/2, d], d = base * 2^(n-1).

    Never below ``base`` (Gmail: "starting at least one second after the error").
    """
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return timedelta(seconds=max(base, rng.uniform(ceiling / 2, ceiling)))


def _error_of(body: bytes) -> _Error | None:
    try:
        return msgspec.json.decode(body, type=_ErrorBody).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _reason_of(error: _Error | None, body: bytes) -> tuple[str, str]:
    if error is None:
        return "", body[:200].decode("utf-8", "replace")
    first = error.errors[0] if error.errors else _ErrorItem()
    return first.reason, error.message or first.message


def _latest(*times: datetime | None) -> datetime | None:
    named = [time for time in times if time is not None]
    return max(named) if named else None


def _retry_after_text(message: str, error: _Error | None) -> datetime | None:
    """The latest "Retry after <RFC 3339 time>" in the error's messages."""
    texts = [message, *(item.message for item in error.errors)] if error is not None else [message]
    times = []
    for found in (match for text in texts for match in _RETRY_AFTER_TEXT.finditer(text)):
        try:
            moment = datetime.fromisoformat(found.group(1).replace("Z", "+00:00").replace(" ", "T"))
        except ValueError:
            continue
        times.append(moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))
    return max(times) if times else None


def _retry_delay(error: _Error | None, now: datetime) -> datetime | None:
    """``google.rpc.RetryInfo.retryDelay`` of the error's details ("30s"), from now."""
    delays = [
        float(found.group(1))
        for detail in (error.details if error is not None else [])
        if detail.type.endswith("google.rpc.RetryInfo") and (found := _DURATION.fullmatch(detail.retryDelay))
    ]
    return now + timedelta(seconds=max(delays)) if delays else None


def _retry_after_header(value: str | None, now: datetime) -> datetime | None:
    """``Retry-After`` in seconds, or as an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
