"""Everything the queue service reads from the environment."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, ClassVar

import msgspec

from mailmerger_shared.settings import (
    AuthServiceUrl,
    HttpServiceSettings,
    QueueCredential,
    Settings,
    StorageServiceUrl,
    TemplatesServiceUrl,
)

Positive = Annotated[int, msgspec.Meta(ge=1)]
HOUR_SECONDS = 3600.0
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]


class ComposeSettings(Settings, frozen=True, kw_only=True):
    """How messages and campaigns are written into the ledger."""

    prefix: ClassVar[str] = "MM_COMPOSE_"
    # Right-hand side of every generated RFC 5322 Message-ID.
    message_id_domain: str = "mailmerger.local"
    # Gmail API: at most 100 recipients per message (GMAIL_FACTS.md 2.3).
    max_recipients: Positive = 100
    # Gmail's size limit for an uploaded message (35 MB, GMAIL_FACTS.md 2.1): larger messages are
    # refused at compose. Keep it equal to the sender's MM_SENDER_MAX_MESSAGE_BYTES.
    max_message_bytes: Positive = 35 * 1024 * 1024
    # Rows rendered and inserted together while a recipient list is built.
    build_batch_rows: Positive = 1000
    max_campaign_rows: Positive = 200_000
    max_upload_bytes: Positive = 64 * 1024 * 1024
    # How often the progress stream of a campaign sends an update.
    progress_interval_seconds: PositiveSeconds = 2.0


class DispatchSettings(Settings, frozen=True, kw_only=True):
    """Pacing defaults and the dispatcher's rhythm.

    Daily limits are Gmail's rolling-24 h message caps (consumer ≈ 500, Workspace 2,000); the
    per-minute limit comes from the per-user API quota: 15,000 units/min / 100 units per send.
    Each account can override its own limits through ``PATCH /v1/senders/{account_id}``.
    """

    prefix: ClassVar[str] = "MM_DISPATCH_"
    tick_seconds: PositiveSeconds = 0.5
    batch_size: Positive = 200  # messages published per tick, all accounts together
    # Share of each account's per-minute limit the dispatcher paces to; the rest absorbs the jitter
    # between a dispatch and its Gmail call, so a sliding minute at Gmail never sees the limit.
    pace_fraction: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.97
    consumer_daily_limit: Positive = 500
    workspace_daily_limit: Positive = 2000
    # Gmail's per-user quota in sends (15,000 units/min / 100 per send): each new account's pace and
    # the most an account can be set to. Keep it equal to the sender's
    # MM_SENDER_ACCOUNT_SENDS_PER_MINUTE, the guard that enforces the same quota at send time.
    per_minute_limit: Positive = 150
    consumer_domains: list[str] = msgspec.field(default_factory=lambda: ["gmail.com", "googlemail.com"])
    # A message still dispatched this long after its dispatch is published again (redispatch.py):
    # longer than a sender takes to settle a claim (prepare + request + settle margin, 4 min).
    redispatch_after_seconds: PositiveSeconds = 900.0
    # A message dispatched this long ago with no outcome yet (re-dispatched meanwhile) is given up
    # as unconfirmed (``no_outcome``): the user decides, and the sender's outcome still wins if it
    # comes. Several times the re-dispatch wait.
    no_outcome_after_seconds: PositiveSeconds = 3600.0
    # A campaign pauses itself after this many failures in a row (listmonk does the same), saying
    # why; resuming it starts the count again. 0: never.
    campaign_failure_limit: Annotated[int, msgspec.Meta(ge=0)] = 10
    # Envelope ids of consumed events are kept this long to drop redeliveries.
    processed_events_retention_hours: Positive = 72
    # Real seconds one hour of a follow-up's ``delay_hours`` lasts (and of an auto-reply's delay):
    # 3600. Tests and the demo compress time with less (60: a 24-hour step waits 24 minutes).
    # Only the hours are scaled: with ``business_days`` the weekday rule still walks calendar days.
    # Refused outside development.
    follow_up_hour_seconds: PositiveSeconds = 3600.0

    def published_defaults(self) -> list[str]:
        if self.follow_up_hour_seconds == HOUR_SECONDS:
            return []
        return [
            f"{self.variable('follow_up_hour_seconds')}={self.follow_up_hour_seconds:g} compresses "
            f"follow-up delays (development and tests only); unset it (one hour is {HOUR_SECONDS:g} s)"
        ]


# Development only: a published key, so that `make run` works without configuration; outside
# development (MM_ENVIRONMENT) start-up refuses it, so every real deployment sets its own.
DEV_QUEUE_SECRET_KEY = "bWFpbG1lcmdlci1xdWV1ZS1kZXYtb25seS1rZXktMzI"  # noqa: S105 (published on purpose)
_MAKE_A_KEY = "python -c 'import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"


class ComplianceSettings(Settings, frozen=True, kw_only=True):
    """Unsubscribe links, the suppression list and the recipient-domain rails."""

    prefix: ClassVar[str] = "MM_COMPLIANCE_"
    # Seals unsubscribe tokens and webhook secrets (each under its own derived key): base64url of
    # 32 random bytes. Changing it invalidates the unsubscribe links of mail already sent.
    secret_key: str = DEV_QUEUE_SECRET_KEY
    # Warn when a sending domain nears Gmail's bulk-sender threshold: 5,000 messages a day to
    # personal Gmail addresses (GMAIL_FACTS.md 2.6). The warning starts at this many.
    bulk_sender_warning: Positive = 4000

    def __post_init__(self) -> None:
        if len(self.key()) != 32:
            raise ValueError(f"{self.variable('secret_key')} must be base64url of 32 bytes ({_MAKE_A_KEY})")

    def key(self) -> bytes:
        try:
            return base64.urlsafe_b64decode(self.secret_key + "=" * (-len(self.secret_key) % 4))
        except (binascii.Error, ValueError):
            return b""

    def published_defaults(self) -> list[str]:
        if self.secret_key.rstrip("=") != DEV_QUEUE_SECRET_KEY:
            return []
        return [
            f"{self.variable('secret_key')} is the published development key; generate one ({_MAKE_A_KEY})"
        ]


class WebhookSettings(Settings, frozen=True, kw_only=True):
    """Delivering events to the users' webhook endpoints."""

    prefix: ClassVar[str] = "MM_WEBHOOKS_"
    # Hosts exempt from the public-address rule and from https: development receivers only
    # (``mailmerger webhooks listen`` on 127.0.0.1). Refused outside development.
    allowed_hosts: list[str] = msgspec.field(default_factory=list)
    timeout_seconds: PositiveSeconds = 10.0
    # Waits between the attempts of one delivery; after the last one it is given up. The default
    # retries for a little over a day (Standard Webhooks' advice: at least a day).
    retry_schedule_seconds: list[PositiveSeconds] = msgspec.field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0, 36000.0]
    )
    # An endpoint whose deliveries have all failed for this long is disabled, saying why.
    disable_after_failing_seconds: PositiveSeconds = 5 * 24 * 3600.0
    # Deliveries in flight at once, all endpoints together, and per endpoint (so a slow endpoint
    # holds half the slots at most). More is slower, not faster: httpcore's pool looks at every
    # connection for each request (bench_webhooks: 16 → ~310 events/s, 64 → ~220, one courier).
    concurrency: Positive = 16
    per_endpoint_concurrency: Positive = 8

    def published_defaults(self) -> list[str]:
        if not self.allowed_hosts:
            return []
        return [
            f"{self.variable('allowed_hosts')} lets webhooks reach private addresses "
            f"({', '.join(self.allowed_hosts)}); unset it"
        ]


class QueueSettings(HttpServiceSettings, frozen=True, kw_only=True):
    credential: QueueCredential
    auth_service: AuthServiceUrl
    templates_service: TemplatesServiceUrl
    storage_service: StorageServiceUrl
    compose: ComposeSettings
    dispatch: DispatchSettings
    compliance: ComplianceSettings
    webhooks: WebhookSettings
