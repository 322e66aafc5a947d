"""Everything the sender service reads from the environment."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from mailmerger_shared.settings import (
    AuthServiceUrl,
    ObjectStoreSettings,
    SenderCredential,
    ServiceSettings,
    Settings,
)

Positive = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
MiB = 1024 * 1024


class GmailSettings(Settings, frozen=True, kw_only=True):
    """Where the Gmail API is and how long one call may take (the emulator in development)."""

    prefix: ClassVar[str] = "MM_GMAIL_"
    api_url: str = "https://gmail.googleapis.com"
    connect_timeout: Positive = 5.0
    # The whole of one call, upload included; a call still running then is abandoned as ambiguous.
    request_timeout: Positive = 60.0
    max_connections: PositiveInt = 100


class DeliverySettings(Settings, frozen=True, kw_only=True):
    """How the sender paces, retries and reconciles deliveries."""

    prefix: ClassVar[str] = "MM_SENDER_"
    # Larger raw messages go through the upload endpoint (message/rfc822) instead of base64 in JSON:
    # a third fewer bytes on the wire and no encode/decode. For a 138 KB message that measured
    # ~100 us less CPU here and ~120 us less at the emulator; for a 1 KB one the two cost the same.
    upload_threshold_bytes: PositiveInt = 64 * 1024
    # Gmail's limit for an uploaded message; larger ones fail before any call.
    max_message_bytes: PositiveInt = 35 * MiB
    # Look an ambiguous send up in the mailbox before sending again. Off only for chaos tests that
    # must see the duplicates a blind resend makes.
    reconcile: bool = True
    # Messages of the mailbox a metadata-only scan reads before it gives up as inconclusive.
    reconcile_scan_limit: PositiveInt = 200
    # A claimed message's Gmail call must start within this time of the claim...
    prepare_timeout_seconds: Positive = 60.0
    # ...and Gmail may still act on an abandoned call for this long after it was abandoned.
    settle_margin_seconds: Positive = 120.0
    backoff_base_seconds: Annotated[float, msgspec.Meta(ge=1)] = 1.0
    backoff_max_seconds: Positive = 900.0
    # Gmail's per-user quota in sends (15,000 units/min / 100 per send; 60 for projects created
    # after 1 May 2026): a sliding-minute guard shared by every replica, behind the dispatcher's pacing.
    account_sends_per_minute: PositiveInt = 150
    attachment_cache_bytes: PositiveInt = 256 * MiB
    # A cached access token is refreshed this long before it expires.
    token_refresh_margin_seconds: Positive = 120.0
    # How long to park an account when Gmail names no time to retry.
    mail_sending_pause_seconds: Positive = 3600.0
    daily_limit_pause_seconds: Positive = 3600.0
    # ...and after a per-minute quota refusal (userRateLimitExceeded, rateLimitExceeded): the whole
    # account pauses this long, so its other sends are not refused too.
    rate_limit_pause_seconds: Positive = 30.0
    reconnect_retry_seconds: Positive = 3600.0
    shutdown_grace_seconds: Positive = 30.0


class WatcherSettings(Settings, frozen=True, kw_only=True):
    """The mailbox watcher: how often and how deep it reads the mailboxes of accounts that sent."""

    prefix: ClassVar[str] = "MM_WATCHER_"
    enabled: bool = True
    # Replies are read by people, not machines: five minutes late is soon enough, and 12 polls an
    # hour of an idle mailbox cost 24 units an hour (one history.list each).
    poll_seconds: Positive = 300.0
    # How long after an account's last send its mailbox is watched: replies and bounces come within
    # days; a later answer is rare and Gmail keeps history for about a week anyway.
    watch_days: PositiveInt = 30
    # Gmail units one pass of one mailbox may spend (history.list 2, messages.list 5, messages.get
    # 5 or 20, getProfile 1: GMAIL_FACTS 2.2). 500 every poll is far below the per-user minute
    # (6,000 for new projects), which the account's sends share.
    units_per_pass: PositiveInt = 500
    # What messages.get costs: 5 in Google's table, 20 per third-party notes on the 2026 model.
    message_get_units: PositiveInt = 5
    # Mailboxes one replica syncs at once (each makes its calls one after the other).
    concurrency: PositiveInt = 8
    # Pages of 100 INBOX messages (newest first) a full sync reads for answers in our threads: a
    # first sync, or after Gmail forgot the stored historyId (404).
    full_sync_pages: PositiveInt = 5
    # An account without a read scope is asked for its scopes again this often (it may reconnect
    # with gmail.metadata); no Gmail call is made for it meanwhile.
    scope_recheck_seconds: Positive = 3600.0
    # A "you have reached a limit for sending mail" bounce parks the account this long: Gmail's
    # sending limits are a rolling 24 hours (GMAIL_FACTS 2.3).
    sending_limit_pause_seconds: Positive = 86400.0
    # How long a replica holds a mailbox it syncs; another may take it once this passed (a crashed
    # replica). Above a pass's longest run: its calls are sequential and each is bounded by the
    # Gmail request timeout.
    lease_seconds: Positive = 120.0
    # Read back the Message-ID Gmail stored for each sent message (GMAIL_FACTS 2.1), one
    # messages.get each, from what a pass's budget leaves.
    readback: bool = True


class SenderSettings(ServiceSettings, frozen=True, kw_only=True):
    """A sender worker's settings (it has no HTTP app: its probes are on ``MM_METRICS_PORT``)."""

    credential: SenderCredential
    auth_service: AuthServiceUrl
    s3: ObjectStoreSettings
    gmail: GmailSettings
    sender: DeliverySettings
    watcher: WatcherSettings = msgspec.field(default_factory=WatcherSettings)
