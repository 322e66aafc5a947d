"""Classifying Gmail's answers by status and reason (GMAIL_FACTS section 2.4), and the backoff."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from mailmerger_sender.classify import (
    Accepted,
    AccountThrottled,
    Ambiguous,
    ClassifyPolicy,
    Outcome,
    Permanent,
    ReconnectRequired,
    Transient,
    Unauthorized,
    backoff,
    classify_answer,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
POLICY = ClassifyPolicy(
    mail_sending_pause=timedelta(hours=1),
    daily_limit_pause=timedelta(hours=2),
    rate_limit_pause=timedelta(seconds=30),
)


def google_error(code: int, reason: str, message: str) -> bytes:
    return json.dumps(
        {
            "error": {
                "errors": [{"domain": "global", "reason": reason, "message": message}],
                "code": code,
                "message": message,
            }
        }
    ).encode()


def classify(status: int, body: bytes, retry_after: str | None = None) -> Outcome:
    return classify_answer(status, body, retry_after, now=NOW, policy=POLICY)


def test_success_carries_gmails_ids() -> None:
    """A 200 with a Message resource is Accepted with its id and thread id."""
    assert classify(200, b'{"id": "18c1", "threadId": "18c0", "labelIds": ["SENT"]}') == Accepted(
        "18c1", "18c0"
    )


def test_success_without_ids_is_ambiguous() -> None:
    """A 200 whose body names no message cannot be recorded as sent: it is reconciled instead."""
    assert isinstance(classify(200, b"<html>proxy page</html>"), Ambiguous)


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (500, "backendError", "Backend Error"),
        (503, "backendError", "The service is currently unavailable."),
        (429, "rateLimitExceeded", "Too many requests: Too many concurrent requests for user"),
        (502, "", "Bad Gateway"),
    ],
)
def test_transient_answers(status: int, reason: str, message: str) -> None:
    """5xx and too many concurrent calls are transient: only the message waits."""
    outcome = classify(status, google_error(status, reason, message))
    assert isinstance(outcome, Transient)
    assert outcome.reason == (reason or f"http_{status}")


def test_forbidden_403_is_classified_by_reason_not_status() -> None:
    """403 domainPolicy is permanent although 403 userRateLimitExceeded throttles the account."""
    assert isinstance(classify(403, google_error(403, "domainPolicy", "disabled")), Permanent)
    assert isinstance(
        classify(403, google_error(403, "userRateLimitExceeded", "slow down")), AccountThrottled
    )


def test_mail_sending_limit_parks_the_account_until_the_time_gmail_names() -> None:
    """429 "(Mail sending)" throttles the account until its "Retry after" time."""
    message = "User-rate limit exceeded.  Retry after 2026-05-02T03:04:05.678Z (Mail sending)"
    outcome = classify(429, google_error(429, "rateLimitExceeded", message))
    assert outcome == AccountThrottled(
        "mail_sending_limit",
        f"429 rateLimitExceeded: {message}",
        datetime(2026, 5, 2, 3, 4, 5, 678000, tzinfo=UTC),
    )


def test_mail_sending_limit_without_a_time_parks_for_the_configured_pause() -> None:
    """Gmail's documented wording carries no time: the account is parked for the policy's pause."""
    message = "Too many requests: User-rate limit exceeded (Mail sending)"
    outcome = classify(429, google_error(429, "rateLimitExceeded", message))
    assert isinstance(outcome, AccountThrottled)
    assert outcome.until == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (403, "userRateLimitExceeded", "User Rate Limit Exceeded"),
        (403, "rateLimitExceeded", "Rate Limit Exceeded"),
        (
            403,
            "rateLimitExceeded",
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute'",
        ),
        (429, "rateLimitExceeded", "Too many requests: User-rate limit exceeded"),
        (429, "", "Resource has been exhausted (e.g. check quota)."),
    ],
)
def test_per_minute_quota_refusals_pause_the_account_briefly(status: int, reason: str, message: str) -> None:
    """Per-user and per-project quota refusals throttle the account, not the message, for the pause."""
    body = google_error(status, reason, message)
    if not reason:
        body = json.dumps(
            {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}
        ).encode()
    outcome = classify(status, body)
    assert isinstance(outcome, AccountThrottled)
    assert outcome.reason == (reason or "rate_limited")
    assert outcome.until == NOW + timedelta(seconds=30)


def test_a_retry_time_without_mail_sending_is_honoured() -> None:
    """ "User-rate limit exceeded.  Retry after <time>" without "(Mail sending)" waits until that time."""
    message = "User-rate limit exceeded.  Retry after 2026-05-01T12:43:14.256Z"
    outcome = classify(429, google_error(429, "rateLimitExceeded", message))
    assert outcome == AccountThrottled(
        "rateLimitExceeded",
        f"429 rateLimitExceeded: {message}",
        datetime(2026, 5, 1, 12, 43, 14, 256000, tzinfo=UTC),
    )


def test_a_retry_time_in_any_message_is_honoured_by_a_transient_answer() -> None:
    """A 503 naming a "Retry after" time is not retried before it (the backoff would start at 1 s)."""
    outcome = classify(503, google_error(503, "backendError", "Busy. Retry after 2026-05-01T12:05:00Z"))
    assert isinstance(outcome, Transient)
    assert outcome.not_before == datetime(2026, 5, 1, 12, 5, tzinfo=UTC)


def test_retry_after_as_an_http_date_is_honoured() -> None:
    """Retry-After may be an HTTP date instead of seconds."""
    outcome = classify(503, google_error(503, "backendError", "busy"), "Fri, 01 May 2026 12:10:00 GMT")
    assert isinstance(outcome, Transient)
    assert outcome.not_before == datetime(2026, 5, 1, 12, 10, tzinfo=UTC)


def test_retry_info_in_the_details_is_honoured() -> None:
    """A google.rpc.RetryInfo detail's retryDelay pauses the account that long, not the default."""
    body = json.dumps(
        {
            "error": {
                "code": 429,
                "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "90s"}],
            }
        }
    ).encode()
    outcome = classify(429, body)
    assert isinstance(outcome, AccountThrottled)
    assert outcome.until == NOW + timedelta(seconds=90)


def test_the_latest_retry_time_google_names_wins() -> None:
    """A header of 10 s and a text naming 5 minutes: the account waits the 5 minutes."""
    message = "User-rate limit exceeded.  Retry after 2026-05-01T12:05:00.000Z"
    outcome = classify(429, google_error(429, "rateLimitExceeded", message), retry_after="10")
    assert isinstance(outcome, AccountThrottled)
    assert outcome.until == datetime(2026, 5, 1, 12, 5, tzinfo=UTC)


def test_daily_limit_exceeded_parks_the_account() -> None:
    """403 dailyLimitExceeded is the project's daily cap: the account waits, the message is kept."""
    outcome = classify(403, google_error(403, "dailyLimitExceeded", "Daily Limit Exceeded"))
    assert outcome == AccountThrottled(
        "dailyLimitExceeded", "403 dailyLimitExceeded: Daily Limit Exceeded", NOW + timedelta(hours=2)
    )


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "failedPrecondition"),
        (403, "domainPolicy"),
        (400, "badRequest"),
        (400, "invalidArgument"),
        (400, "invalid"),
    ],
)
def test_permanent_answers(status: int, reason: str) -> None:
    """Mail service not enabled, a domain policy, and an invalid message fail the message."""
    assert classify(status, google_error(status, reason, "no")) == Permanent(reason, f"{status} {reason}: no")


def test_401_asks_for_a_token_refresh() -> None:
    """401 authError is Unauthorized: refresh once, then reconnect."""
    assert isinstance(classify(401, google_error(401, "authError", "Invalid Credentials")), Unauthorized)


def test_missing_send_scope_requires_reconnecting() -> None:
    """403 insufficientPermissions: the grant itself cannot send."""
    outcome = classify(403, google_error(403, "insufficientPermissions", "Insufficient Permission"))
    assert isinstance(outcome, ReconnectRequired)


def test_retry_after_header_sets_the_earliest_retry() -> None:
    """A Retry-After in seconds becomes the transient outcome's not_before."""
    outcome = classify(503, google_error(503, "backendError", "busy"), retry_after="30")
    assert isinstance(outcome, Transient)
    assert outcome.not_before == NOW + timedelta(seconds=30)


def test_unparseable_error_body_is_classified_by_status() -> None:
    """Without Google's JSON, a 4xx is permanent and a 5xx transient."""
    assert isinstance(classify(404, b"Not Found"), Permanent)
    assert isinstance(classify(504, b"Gateway Timeout"), Transient)


def test_backoff_grows_exponentially_with_jitter_and_never_below_a_second() -> None:
    """Attempt n waits within [d/2, d] for d = base * 2^(n-1), capped, and at least base."""
    rng = random.Random(1)
    delays = [backoff(attempt, base=1.0, cap=60.0, rng=rng).total_seconds() for attempt in range(1, 10)]
    assert all(delay >= 1.0 for delay in delays)
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(60.0, 2.0 ** (attempt - 1))
        assert max(1.0, ceiling / 2) <= delay <= max(1.0, ceiling)
    assert delays[-1] <= 60.0
