"""The tables of the ``sender`` schema: the idempotency ledger and the outbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
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
    CheckConstraint(f"state IN {STATES!r}", name="state"),
)
