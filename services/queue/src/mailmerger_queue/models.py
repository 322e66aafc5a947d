"""The tables of the ``queue`` schema.

``messages`` is the ledger: one row per email that must be sent, and its own outbox entry (the
dispatcher publishes ``SendEmail`` from it). ``attempts`` and ``transitions`` are its history.
A campaign message keeps its rendered content in its ``recipients`` row (``messages.subject``,
``html`` and ``text`` are then NULL), so a 100k-row campaign is stored once, not twice. A follow-up
(``messages.step`` > 1, ``sequences``) is rendered when it is built and keeps its content in its own
``messages`` row.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Row,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from mailmerger_shared.db import service_metadata

metadata = service_metadata("queue")

# A row of any query over these tables.
Record: TypeAlias = Row[*tuple[Any, ...]]


_MESSAGE_STATES = "'scheduled', 'dispatched', 'sent', 'failed', 'cancelled', 'unconfirmed'"
_CAMPAIGN_STATES = "'draft', 'running', 'paused', 'completed', 'cancelled'"
_SENDER_STATES = "'connected', 'reconnect_required', 'disconnected'"
_STOP_REASONS = "'replied', 'bounced', 'unsubscribed', 'stopped', 'suppressed'"
_RESPONSE_KINDS = "'reply', 'auto_reply', 'bounce', 'delay'"


def _when(name: str, *, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


# Gmail accounts as auth announced them, with this service's pacing state.
senders = Table(
    "senders",
    metadata,
    Column("account_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("email", String(320), nullable=False),
    Column("display_name", String(200)),
    Column("scopes", ARRAY(String(200)), nullable=False),
    Column("state", String(24), nullable=False),
    Column("daily_limit", Integer, nullable=False),
    Column("per_minute_limit", Integer, nullable=False),
    _when("parked_until", nullable=True),
    Column("parked_reason", Text),
    # The pacing clock (GCRA's theoretical arrival time): the account's next dispatch is due then;
    # dispatches may run up to one tick ahead of it. NULL: never paced, due now.
    _when("paced_until", nullable=True),
    _when("connected_at"),
    # occurred-at of the account event that set ``state``: an older event never overrides it.
    _when("state_changed_at"),
    # The Google account behind the row: Gmail's quotas are per Google user, so every row with the
    # same key (the same Gmail account connected by several users) is paced and parked as one.
    # The pacing state that counts is the one of the key's oldest row (``dispatch.pacers``).
    Column("google_key", String(320), Computed("lower(email)", persisted=True), nullable=False),
    CheckConstraint(f"state IN ({_SENDER_STATES})", name="state"),
    Index("ix_senders_google_key", "google_key"),
)

# Attachment metadata resolved from storage when a message or campaign referenced it.
attachments = Table(
    "attachments",
    metadata,
    Column("attachment_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("object_key", String(1024), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    _when("deleted_at", nullable=True),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("account_id", BigInteger, ForeignKey("senders.account_id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("template_id", BigInteger, nullable=False),
    Column("template_version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("address_column", String(200), nullable=False),
    Column("attachments_column", String(200)),
    Column("attachment_ids", ARRAY(BigInteger), nullable=False),
    _when("start_at", nullable=True),
    Column("timezone", String(64), nullable=False),
    Column("window_start", Time),
    Column("window_end", Time),
    Column("weekdays", ARRAY(SmallInteger), nullable=False),  # ISO: Monday = 1 … Sunday = 7
    Column("daily_cap", Integer),
    Column("spacing_seconds", Integer, nullable=False),
    Column("jitter_seconds", Integer, nullable=False),
    _when("next_send_at", nullable=True),  # spacing: the campaign's next message not before this
    _when("created_at"),
    _when("launched_at", nullable=True),
    _when("finished_at", nullable=True),
    # Failures since the campaign's last sent message; at MM_DISPATCH_CAMPAIGN_FAILURE_LIMIT the
    # campaign pauses itself, saying why in ``paused_reason`` (both cleared on resume).
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("paused_reason", Text),
    # RFC 8058 one-click unsubscribe headers on the campaign's mail (compliance.unsubscribe).
    Column("list_unsubscribe", Boolean, nullable=False, server_default=text("true")),
    # At most this many messages a day (the campaign's local day) to one recipient domain; NULL: no rail.
    Column("domain_daily_cap", Integer),
    # What a reply found by the mailbox watcher does (``sequences.responses``): stop the replier's
    # sequence; also stop every other recipient of the campaign at the replier's (non-consumer) domain.
    Column("stop_on_reply", Boolean, nullable=False, server_default=text("true")),
    Column("stop_on_domain_reply", Boolean, nullable=False, server_default=text("false")),
    # The list's columns holding each row's Cc, Bcc and Reply-To addresses (NULL: none).
    Column("cc_column", String(200)),
    Column("bcc_column", String(200)),
    Column("reply_to_column", String(200)),
    CheckConstraint(f"state IN ({_CAMPAIGN_STATES})", name="state"),
)

# Every row of a campaign's recipient list: its fields, its problem if any, its rendered mail.
recipients = Table(
    "recipients",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("campaign_id", BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("row_number", Integer, nullable=False),
    Column("address", Text, nullable=False),
    Column("fields", JSONB, nullable=False),
    Column("attachment_ids", ARRAY(BigInteger), nullable=False),
    Column("problem", String(32)),
    Column("detail", Text),
    Column("subject", Text),
    Column("html", Text),
    Column("text", Text),
    # The row's Cc, Bcc and Reply-To addresses, normalized (from the campaign's columns).
    Column("cc_addrs", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("bcc_addrs", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("reply_to_addrs", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    # A stopped recipient gets no later step of the campaign's sequence (``sequences.stops``).
    _when("stopped_at", nullable=True),
    Column("stop_reason", String(16)),
    CheckConstraint(f"stop_reason IN ({_STOP_REASONS})", name="stop_reason"),
    UniqueConstraint("campaign_id", "row_number"),
    Index(
        "ix_recipients_problems", "campaign_id", "row_number", postgresql_where=text("problem IS NOT NULL")
    ),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    # NULL: a legacy email queued before the user connected any Gmail account; the first account
    # the user connects is given it (``emails.legacy.assign_waiting``), and no dispatch sees it before.
    Column("account_id", BigInteger, ForeignKey("senders.account_id")),
    Column("campaign_id", BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE")),
    Column("recipient_id", BigInteger, ForeignKey("recipients.id", ondelete="CASCADE")),
    # The step of the campaign's sequence this message is (1: the first email; ``campaign_steps``).
    Column("step", SmallInteger, nullable=False, server_default=text("1")),
    Column("state", String(16), nullable=False),
    # NULL while held: the legacy queue keeps an email until the user asks to send it.
    _when("send_at", nullable=True),
    Column("attempt", Integer, nullable=False),  # dispatches so far; SendEmail.attempt of the last one
    # The user's resends so far (of a failed or unconfirmed message): SendEmail.generation. The
    # sender's ledger takes a newer generation as new work, and an outcome of an older one changes
    # nothing here.
    Column("generation", Integer, nullable=False, server_default=text("0")),
    Column("rfc_message_id", String(255), nullable=False, unique=True),
    Column("to_addrs", ARRAY(Text), nullable=False),
    Column("cc_addrs", ARRAY(Text), nullable=False),
    Column("bcc_addrs", ARRAY(Text), nullable=False),
    # Where replies go (the Reply-To header); empty: to the sender.
    Column("reply_to_addrs", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("subject", Text),
    Column("html", Text),
    Column("text", Text),
    Column("attachment_ids", ARRAY(BigInteger), nullable=False),
    Column("correlation_id", String(128)),
    Column("gmail_id", String(128)),
    Column("thread_id", String(128)),
    # A follow-up in its recipient's thread: the Message-ID it answers and the thread's earlier ones.
    Column("in_reply_to", String(255)),
    Column("reference_ids", ARRAY(Text)),
    # The Message-ID Gmail stored for this message, read back by the mailbox watcher
    # (``MessageIdRead``); follow-ups thread on it rather than on ``rfc_message_id`` when known.
    Column("stored_message_id", String(255)),
    # The strongest response the mailbox watcher found to this message (bounce > reply >
    # auto_reply > delay; ``responses`` holds each one) and when it arrived. It is a column of its
    # own, not a state: a replied or bounced message WAS sent (Gmail accepted it, and that is what
    # ``state`` records, with its transitions and the pacing counts that read it); what came back
    # afterwards is a fact about the recipient, and folding it into the state machine would make
    # every reader of ``sent`` (pacing, progress, completion, the builder) learn new states.
    Column("response", String(16)),
    _when("responded_at", nullable=True),
    _when("sent_at", nullable=True),
    Column("outcome_reason", String(64)),
    Column("outcome_detail", Text),
    _when("created_at"),
    _when("updated_at"),
    CheckConstraint(f"state IN ({_MESSAGE_STATES})", name="state"),
    CheckConstraint("account_id IS NOT NULL OR campaign_id IS NULL", name="unassigned_is_direct"),
    CheckConstraint(f"response IN ({_RESPONSE_KINDS})", name="response"),
    # One message per step of a recipient: a second follow-up builder inserts nothing.
    UniqueConstraint("recipient_id", "step"),
    Index("ix_messages_user_id_id", "user_id", "id"),
    Index("ix_messages_unassigned", "user_id", postgresql_where=text("account_id IS NULL")),
    Index("ix_messages_campaign_id_state", "campaign_id", "state"),
    # The dispatcher's claim: the next due time, then each account's direct stream and each
    # campaign's stream in send_at order. Partial, so sent history never weighs on them.
    Index("ix_messages_due", "send_at", postgresql_where=text("state = 'scheduled'")),
    Index(
        "ix_messages_direct_due",
        "account_id",
        "send_at",
        postgresql_where=text("state = 'scheduled' AND campaign_id IS NULL"),
    ),
    Index("ix_messages_campaign_due", "campaign_id", "send_at", postgresql_where=text("state = 'scheduled'")),
    # The redispatch sweep (every ~10 s): only messages in flight, never the sent history.
    Index("ix_messages_in_flight", "updated_at", postgresql_where=text("state = 'dispatched'")),
)

# The follow-ups of a campaign (step 1 is the campaign's own template): each sent ``delay_hours``
# after the recipient's previous step was sent (counting only the campaign's weekdays, in its time
# zone, when ``business_days``), in the same Gmail thread unless ``same_thread`` is false.
campaign_steps = Table(
    "campaign_steps",
    metadata,
    Column("campaign_id", BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("step", SmallInteger, primary_key=True, autoincrement=False),
    Column("template_id", BigInteger, nullable=False),
    Column("template_version", Integer, nullable=False),
    Column("delay_hours", Integer, nullable=False),
    Column("business_days", Boolean, nullable=False),
    Column("same_thread", Boolean, nullable=False),
    CheckConstraint("step >= 2", name="step"),
    CheckConstraint("delay_hours >= 1", name="delay_hours"),
)

# One row per dispatch of a message; pacing counts these per account and per campaign.
attempts = Table(
    "attempts",
    metadata,
    Column("message_id", BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("attempt", Integer, primary_key=True, autoincrement=False),
    Column("account_id", BigInteger, nullable=False),
    Column("campaign_id", BigInteger),
    _when("dispatched_at"),
    Column("outcome", String(16)),  # NULL while in flight
    _when("outcome_at", nullable=True),
    Column("reason", String(64)),
    Column("detail", Text),
    Index("ix_attempts_account_id_dispatched_at", "account_id", "dispatched_at"),
    Index("ix_attempts_campaign_id_dispatched_at", "campaign_id", "dispatched_at"),
)

transitions = Table(
    "transitions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "message_id", BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    _when("at"),
    Column("from_state", String(16)),  # NULL for the creation of the message
    Column("to_state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
)

# Incoming mail the mailbox watcher found in the thread of one of our sent messages
# (``ResponseReceived``), one row per Gmail message: the primary key applies each one once, however
# often the watcher reports it (a redelivery, a full resync).
responses = Table(
    "responses",
    metadata,
    Column("account_id", BigInteger, primary_key=True, autoincrement=False),
    Column("gmail_id", String(128), primary_key=True),
    Column(
        "message_id", BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("kind", String(16), nullable=False),
    Column("from_address", Text, nullable=False),
    Column("failed_recipient", Text),
    _when("received_at"),
    Column("detail", Text, nullable=False),
    _when("recorded_at"),
    CheckConstraint(f"kind IN ({_RESPONSE_KINDS})", name="kind"),
)

# Envelope ids of consumed events: a redelivered event is recognised and skipped.
processed_events = Table(
    "processed_events",
    metadata,
    Column("envelope_id", Uuid, primary_key=True),
    _when("processed_at"),
    Index("ix_processed_events_processed_at", "processed_at"),
)

# Who a user's mail must never reach again: an address, or every address of a domain. Checked
# at dispatch for every campaign message (compliance.suppression). Values are lowercased.
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("value", String(320), nullable=False),
    Column("reason", String(16), nullable=False),
    Column("source", Text),  # what added it: a campaign, an import file, the API
    _when("created_at"),
    CheckConstraint("kind IN ('address', 'domain')", name="kind"),
    CheckConstraint(
        "reason IN ('unsubscribe', 'hard_bounce', 'reply_stop', 'manual', 'import')", name="reason"
    ),
    UniqueConstraint("user_id", "kind", "value"),
    Index("ix_suppressions_user_id_id", "user_id", "id"),
)

# Messages a campaign dispatched to each recipient domain on each local day: the domain rail's
# counter, one row per (campaign, domain, day), incremented under its row lock so that any
# number of dispatchers keep the cap together.
domain_sends = Table(
    "domain_sends",
    metadata,
    Column("campaign_id", BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("domain", String(255), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("sent", Integer, nullable=False),
)

# Users whose data was purged: a late account event must not bring any of it back.
deleted_users = Table(
    "deleted_users",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    _when("deleted_at"),
)


# --- outgoing webhooks (``webhooks``) ----------------------------------------------------------

_DELIVERY_STATES = "'pending', 'delivered', 'failed'"

# A user's webhook endpoint: where events go and which. The signing secret is sealed
# (``webhooks.sealing``); ``failing_since`` is the first failure since the last success.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("description", String(200), nullable=False, server_default=text("''")),
    Column("events", ARRAY(String(64)), nullable=False),
    Column("secret_sealed", LargeBinary, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", Text),
    _when("failing_since", nullable=True),
    _when("created_at"),
    _when("updated_at"),
)

# One event for one endpoint, staged in the transaction of the change it reports: the outbox the
# courier delivers from. ``event_id`` is the ``webhook-id``, the same at every attempt and replay.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "endpoint_id",
        BigInteger,
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),  # so far; a claim adds one before its POST
    # The attempt the retry schedule counts from: 1, or the first attempt after a replay.
    Column("schedule_from", Integer, nullable=False, server_default=text("1")),
    # Pending: due then (while an attempt is in flight, its lease ends then).
    _when("next_attempt_at"),
    _when("created_at"),
    _when("delivered_at", nullable=True),
    CheckConstraint(f"state IN ({_DELIVERY_STATES})", name="state"),
    Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
)

# Every attempt of a delivery: what the receiver answered, or why there was no answer.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column(
        "delivery_id",
        BigInteger,
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("attempt", Integer, primary_key=True, autoincrement=False),
    _when("at"),
    Column("status_code", Integer),  # NULL: no answer (refused target, timeout, connection error)
    Column("latency_ms", Integer, nullable=False),
    Column("response_excerpt", String(500)),
    Column("error", Text),
)
