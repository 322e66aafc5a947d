"""mailbox watcher

Revision ID: c41e7d2a9f30
Revises: 6cfb8d694600
Create Date: 2026-12-07 17:10:00.000000

The mailboxes the watcher reads (where its last ``history.list`` ended, until when, who holds
it), the Message-ID Gmail stored for each sent message, and the indexes the watcher's lookups
need: a thread's messages of one account, the accounts that sent lately, the sent messages not yet
read back. All three indexes are partial (``state = 'sent'``), so they stay a fraction of the table.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c41e7d2a9f30"
down_revision: str | None = "6cfb8d694600"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mailboxes",
        sa.Column("account_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("history_id", sa.BigInteger(), nullable=True),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("watch_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), server_default=sa.text("'watching'"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("state IN ('watching', 'send_only', 'error')", name=op.f("ck_mailboxes_state")),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_mailboxes")),
        schema="sender",
    )
    op.create_index("ix_mailboxes_next_poll_at", "mailboxes", ["next_poll_at"], unique=False, schema="sender")
    op.add_column("deliveries", sa.Column("stored_message_id", sa.String(length=998)), schema="sender")
    op.add_column("deliveries", sa.Column("read_back_at", sa.DateTime(timezone=True)), schema="sender")
    op.create_index(
        "ix_deliveries_sent_thread",
        "deliveries",
        ["account_id", "thread_id"],
        unique=False,
        schema="sender",
        postgresql_where=sa.text("state = 'sent'"),
    )
    op.create_index(
        "ix_deliveries_sent_at",
        "deliveries",
        ["sent_at"],
        unique=False,
        schema="sender",
        postgresql_where=sa.text("state = 'sent'"),
    )
    op.create_index(
        "ix_deliveries_read_back_due",
        "deliveries",
        ["account_id", "sent_at"],
        unique=False,
        schema="sender",
        postgresql_where=sa.text("state = 'sent' AND read_back_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_read_back_due", table_name="deliveries", schema="sender")
    op.drop_index("ix_deliveries_sent_at", table_name="deliveries", schema="sender")
    op.drop_index("ix_deliveries_sent_thread", table_name="deliveries", schema="sender")
    op.drop_column("deliveries", "read_back_at", schema="sender")
    op.drop_column("deliveries", "stored_message_id", schema="sender")
    op.drop_index("ix_mailboxes_next_poll_at", table_name="mailboxes", schema="sender")
    op.drop_table("mailboxes", schema="sender")
