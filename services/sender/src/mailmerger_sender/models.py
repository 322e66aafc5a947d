"""The tables of the ``sender`` schema: the idempotency ledger and the outbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    false,
    text,
)

from mailmerger_sender.ledger import states
from mailmerger_shared.db import service_metadata
from mailmerger_shared.outbox import outbox_table

metadata = service_metadata("sender")

# Events this service publishes are staged here in the business transaction.
outbox = outbox_table(metadata)

STATES = states.ALL

# One row per email (the queue's message id), whatever the number of attempts.
#
# - ``sending``: claimed by the command ``command_id``; its Gmail call may be in progress.
# - ``ambiguous``: the call went out and its answer was lost; reconcile before any resend.
# - ``deferred``: the last attempt certainly did not send; a later command may claim it again.
# - ``sent`` / ``failed`` / ``unconfirmed``: final; a later command only re-publishes the outcome,
#   unless it is of a newer ``generation`` (the user asked to send a failed or unconfirmed message
#   again): then it claims the row as new work. ``sent`` is final for every generation.
#
# ``settles_at`` bounds the claim: after it, no call made under the claim can still be acted on by
# Gmail, so "not in the mailbox" is conclusive. ``uncertain_since`` is the claim time of the first
# attempt that ended ``unconfirmed``: a resend looks the message up in the mailbox from then on,
# where a read scope allows, before sending it again.
deliveries = Table(
    "deliveries",
    metadata,
    Column("message_id", BigInteger, primary_key=True, autoincrement=False),
    Column("rfc_message_id", String(998), nullable=False, unique=True),
    Column("account_id", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("command_id", Uuid, nullable=False),
    Column("state", String(16), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("settles_at", DateTime(timezone=True), nullable=False),
    Column("gmail_id", String(64)),
    Column("thread_id", String(64)),
    Column("sent_at", DateTime(timezone=True)),
    Column("reconciled", Boolean, nullable=False, server_default=false()),
    Column("reason", String(100)),
    Column("detail", Text),
    Column("generation", Integer, nullable=False, server_default=text("0")),
    Column("uncertain_since", DateTime(timezone=True)),
    # What Gmail stored as the message's Message-ID, read back by the mailbox watcher where a read
    # scope allows (NULL with ``read_back_at`` set: the message was gone from the mailbox).
    Column("stored_message_id", String(998)),
    Column("read_back_at", DateTime(timezone=True)),
    CheckConstraint(f"state IN {STATES!r}", name="state"),
    # The watcher's lookups: our newest message of a thread, the accounts that sent lately, and
    # the sent messages whose Message-ID is still to read back.
    Index("ix_deliveries_sent_thread", "account_id", "thread_id", postgresql_where=text("state = 'sent'")),
    Index("ix_deliveries_sent_at", "sent_at", postgresql_where=text("state = 'sent'")),
    Index(
        "ix_deliveries_read_back_due",
        "account_id",
        "sent_at",
        postgresql_where=text("state = 'sent' AND read_back_at IS NULL"),
    ),
)

MAILBOX_STATES = ("watching", "send_only", "error")

# One row per Gmail account whose mailbox the watcher reads (``watcher.mailboxes``).
#
# - ``history_id``: where the next ``history.list`` starts; NULL until the first (full) sync. It
#   moves only in the transaction that stages what was found before it.
# - ``last_sent_at``: the account's latest send enrolled; enrollment reads the sends after the
#   latest of all (a changed ``watch_days`` moves no bound).
# - ``watch_until``: the account's last send plus ``watch_days``; no pass after it, and the row is
#   deleted at the next enrollment (a later send enrolls the account again, with a full sync).
# - ``next_poll_at``: when a pass is due (also the backoff after errors and the scope re-check).
# - ``leased_until``: a replica's claim on the mailbox; its writes check it still holds.
# - ``state``: ``watching``; ``send_only`` (no read scope, re-checked every
#   ``scope_recheck_seconds``, no Gmail call); ``error`` (``last_error`` says why; retried with
#   backoff, ``failures`` in a row).
mailboxes = Table(
    "mailboxes",
    metadata,
    Column("account_id", BigInteger, primary_key=True, autoincrement=False),
    Column("history_id", BigInteger),
    Column("last_sent_at", DateTime(timezone=True), nullable=False),
    Column("watch_until", DateTime(timezone=True), nullable=False),
    Column("next_poll_at", DateTime(timezone=True), nullable=False),
    Column("leased_until", DateTime(timezone=True)),
    Column("last_synced_at", DateTime(timezone=True)),
    Column("state", String(16), nullable=False, server_default=text("'watching'")),
    Column("last_error", Text),
    Column("failures", Integer, nullable=False, server_default=text("0")),
    CheckConstraint(f"state IN {MAILBOX_STATES!r}", name="state"),
    Index("ix_mailboxes_next_poll_at", "next_poll_at"),
)
