"""The operators' metrics, defined once: what was sent and why not, how far behind, how slow is Gmail.

Every object lives in prometheus_client's default registry, so each HTTP app's ``/metrics`` (Litestar's
``PrometheusController``) exposes them, and so does the all-in-one's; a worker process with no HTTP
app serves the same registry beside its probes on ``MM_METRICS_PORT`` (``web.probes``; off when
unset). No business logic here: the services say what happened, these helpers only count it.

Gauges refreshed by the dispatcher (``mailmerger_queue_scheduled_messages``,
``mailmerger_accounts_parked``) are set by every replica to the same database-wide value: aggregate
them with ``max``, never ``sum``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import ClassVar

from prometheus_client import Counter, Gauge, Histogram

from mailmerger_shared.settings import Settings

# Seconds from a minute to a day: lag is "a tick late" normally and "hours" when an account is parked.
_LAG_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
_GMAIL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)

SENDS = Counter(
    "mailmerger_sender_deliveries",
    "Deliveries the sender settled, by outcome (sent, deferred, failed, unconfirmed, ambiguous) and reason.",
    ["outcome", "reason"],
)
GMAIL_REQUEST_SECONDS = Histogram(
    "mailmerger_gmail_request_duration_seconds",
    "Gmail API calls that got an answer, by operation and HTTP status.",
    ["operation", "status"],
    buckets=_GMAIL_BUCKETS,
)
DISPATCHED = Counter("mailmerger_dispatcher_published", "SendEmail commands the broker confirmed.")
REDISPATCHED = Counter(
    "mailmerger_dispatcher_redispatched",
    "SendEmail commands published again because no outcome came back in time (should stay at 0).",
)
SWEPT = Counter(
    "mailmerger_dispatcher_swept",
    "Stuck messages the dispatcher's sweep gave a next step, by what it did "
    "(campaigns_reopened, cancelled, no_outcome).",
    ["action"],
)
DISPATCH_TICKS = Counter(
    "mailmerger_dispatcher_ticks", "Dispatcher ticks, by result (ok, failed).", ["result"]
)
DISPATCH_LAG_SECONDS = Histogram(
    "mailmerger_dispatch_lag_seconds",
    "How late a message was published: dispatch time minus its send_at.",
    buckets=_LAG_BUCKETS,
)
SCHEDULED_MESSAGES = Gauge(
    "mailmerger_queue_scheduled_messages",
    "Messages waiting in the ledger; due=true ones are already late (the real queue depth).",
    ["due"],
)
WATCHER_QUOTA_UNITS = Counter(
    "mailmerger_watcher_quota_units",
    "Gmail quota units the sender's mailbox watcher spent, by API method (history.list, messages.get…).",
    ["method"],
)
WATCHER_RESPONSES = Counter(
    "mailmerger_watcher_responses",
    "What the mailbox watcher found in the threads of sent messages, by kind "
    "(reply, auto_reply, bounce, delay, sending_limit).",
    ["kind"],
)
PARKED_ACCOUNTS = Gauge(
    "mailmerger_accounts_parked",
    "Gmail accounts parked after Gmail throttled them (parked_until in the future).",
)


class MetricsSettings(Settings, frozen=True, kw_only=True):
    """Where a worker process (sender, dispatcher) serves ``/health``, ``/ready`` and ``/metrics``."""

    prefix: ClassVar[str] = "MM_METRICS_"
    port: int | None = None  # unset: no listener (tests; the all-in-one serves /metrics itself)
    host: str = "127.0.0.1"


def record_delivery(outcome: str, reason: object) -> None:
    SENDS.labels(outcome, str(reason) if reason else "none").inc()


def observe_gmail_call(path: str, status: int, seconds: float) -> None:
    GMAIL_REQUEST_SECONDS.labels(gmail_operation(path), str(status)).observe(seconds)


def gmail_operation(path: str) -> str:
    """A low-cardinality name for a Gmail API path (message ids and query strings dropped)."""
    path = path.split("?", 1)[0]
    if path.endswith("/messages/send"):
        return "messages.send.upload" if path.startswith("/upload/") else "messages.send"
    if path.endswith("/messages"):
        return "messages.list"
    if "/messages/" in path:
        return "messages.get"
    return path.rsplit("/", 1)[-1] or "other"


def observe_dispatched(
    now: datetime, send_at_by_id: Mapping[int, datetime], confirmed: Iterable[int]
) -> None:
    """Count the confirmed messages of a tick and how late each was."""
    n = 0
    for message_id in confirmed:
        n += 1
        send_at = send_at_by_id.get(message_id)
        if send_at is not None:
            DISPATCH_LAG_SECONDS.observe(max(0.0, (now - send_at).total_seconds()))
    DISPATCHED.inc(n)


def set_scheduled(due: int, later: int) -> None:
    SCHEDULED_MESSAGES.labels("true").set(due)
    SCHEDULED_MESSAGES.labels("false").set(later)
