"""The tables of the ``queue`` schema.

``messages`` is the ledger: one row per email that must be sent, and its own outbox entry (the
dispatcher publishes ``SendEmail`` from it). ``attempts`` and ``transitions`` are its history.
A campaign message keeps its rendered content in its ``recipients`` row (``messages.subject``,
``html`` and ``text`` are then NULL), so a 100k-row campaign is stored once, not twice.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
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
    Column("recipient_id", BigInteger, ForeignKey("recipients.id", ondelete="CASCADE"), unique=True),
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
    Column("subject", Text),
    Column("html", Text),
    Column("text", Text),
    Column("attachment_ids", ARRAY(BigInteger), nullable=False),
    Column("correlation_id", String(128)),
    Column("gmail_id", String(128)),
    Column("thread_id", String(128)),
    _when("sent_at", nullable=True),
    Column("outcome_reason", String(64)),
    Column("outcome_detail", Text),
    _when("created_at"),
    _when("updated_at"),
    CheckConstraint(f"state IN ({_MESSAGE_STATES})", name="state"),
    CheckConstraint("account_id IS NOT NULL OR campaign_id IS NULL", name="unassigned_is_direct"),
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

# Envelope ids of consumed events: a redelivered event is recognised and skipped.
processed_events = Table(
    "processed_events",
    metadata,
    Column("envelope_id", Uuid, primary_key=True),
    _when("processed_at"),
    Index("ix_processed_events_processed_at", "processed_at"),
)

# Users whose data was purged: a late account event must not bring any of it back.
deleted_users = Table(
    "deleted_users",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    _when("deleted_at"),
)
