"""Everything the queue service reads from the environment."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from mailmerger_shared.settings import (
    AuthServiceUrl,
    BrokerSettings,
    DatabaseSettings,
    Deployment,
    HttpSettings,
    JwtSettings,
    LogSettings,
    QueueCredential,
    RedisSettings,
    Settings,
    StorageServiceUrl,
    TemplatesServiceUrl,
)

Positive = Annotated[int, msgspec.Meta(ge=1)]
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


class QueueSettings(msgspec.Struct, frozen=True, kw_only=True):
    deployment: Deployment  # MM_ENVIRONMENT: outside development, published values are refused
    http: HttpSettings
    database: DatabaseSettings
    broker: BrokerSettings
    redis: RedisSettings  # ended sessions (shared web.auth.EndedSessions)
    jwt: JwtSettings
    log: LogSettings
    credential: QueueCredential
    auth_service: AuthServiceUrl
    templates_service: TemplatesServiceUrl
    storage_service: StorageServiceUrl
    compose: ComposeSettings
    dispatch: DispatchSettings
