"""sequences: follow-up steps, a message per step of a recipient, stopped recipients

Revision ID: d5f2b8c0e7a4
Revises: c4e8a1d9f3b6
Create Date: 2026-12-07 15:00:00

A campaign's follow-ups (``campaign_steps``); ``messages.step`` (1 for every existing message) with
one message per (recipient, step) instead of one per recipient; a follow-up's threading headers;
and the recipient's stop (``stopped_at``, ``stop_reason``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d5f2b8c0e7a4"
down_revision: str | None = "c4e8a1d9f3b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_steps",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("delay_hours", sa.Integer(), nullable=False),
        sa.Column("business_days", sa.Boolean(), nullable=False),
        sa.Column("same_thread", sa.Boolean(), nullable=False),
        sa.CheckConstraint("step >= 2", name=op.f("ck_campaign_steps_step")),
        sa.CheckConstraint("delay_hours >= 1", name=op.f("ck_campaign_steps_delay_hours")),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["queue.campaigns.id"],
            name=op.f("fk_campaign_steps_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "step", name=op.f("pk_campaign_steps")),
        schema="queue",
    )
    op.add_column(
        "messages",
        sa.Column("step", sa.SmallInteger(), server_default=sa.text("1"), nullable=False),
        schema="queue",
    )
    op.add_column("messages", sa.Column("in_reply_to", sa.String(length=255), nullable=True), schema="queue")
    op.add_column(
        "messages", sa.Column("reference_ids", postgresql.ARRAY(sa.Text()), nullable=True), schema="queue"
    )
    op.drop_constraint(op.f("uq_messages_recipient_id"), "messages", schema="queue", type_="unique")
    op.create_unique_constraint(
        op.f("uq_messages_recipient_id_step"), "messages", ["recipient_id", "step"], schema="queue"
    )
    op.add_column(
        "recipients", sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True), schema="queue"
    )
    op.add_column("recipients", sa.Column("stop_reason", sa.String(length=16), nullable=True), schema="queue")
    op.create_check_constraint(
        op.f("ck_recipients_stop_reason"),
        "recipients",
        "stop_reason IN ('replied', 'bounced', 'unsubscribed', 'stopped', 'suppressed')",
        schema="queue",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_recipients_stop_reason"), "recipients", schema="queue", type_="check")
    op.drop_column("recipients", "stop_reason", schema="queue")
    op.drop_column("recipients", "stopped_at", schema="queue")
    # Follow-ups cannot live under one message per recipient: they go with the downgrade.
    op.execute("DELETE FROM queue.messages WHERE step > 1")
    op.drop_constraint(op.f("uq_messages_recipient_id_step"), "messages", schema="queue", type_="unique")
    op.create_unique_constraint(
        op.f("uq_messages_recipient_id"), "messages", ["recipient_id"], schema="queue"
    )
    op.drop_column("messages", "reference_ids", schema="queue")
    op.drop_column("messages", "in_reply_to", schema="queue")
    op.drop_column("messages", "step", schema="queue")
    op.drop_table("campaign_steps", schema="queue")
