"""suppression list and recipient-domain rails

Revision ID: c4e8a1d9f3b6
Revises: b7c1f0e4d2a1
Create Date: 2026-12-07 14:00:00

The user's suppression list (addresses and domains), the per-campaign, per-domain, per-day counter
of the domain rail, and two campaign settings: one-click unsubscribe headers (on by default) and the
daily cap per recipient domain.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4e8a1d9f3b6"
down_revision: str | None = "b7c1f0e4d2a1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('address', 'domain')", name=op.f("ck_suppressions_kind")),
        sa.CheckConstraint(
            "reason IN ('unsubscribe', 'hard_bounce', 'reply_stop', 'manual', 'import')",
            name=op.f("ck_suppressions_reason"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("user_id", "kind", "value", name=op.f("uq_suppressions_user_id_kind_value")),
        schema="queue",
    )
    op.create_index(
        "ix_suppressions_user_id_id", "suppressions", ["user_id", "id"], unique=False, schema="queue"
    )
    op.create_table(
        "domain_sends",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["queue.campaigns.id"],
            name=op.f("fk_domain_sends_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "domain", "day", name=op.f("pk_domain_sends")),
        schema="queue",
    )
    op.add_column(
        "campaigns",
        sa.Column("list_unsubscribe", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        schema="queue",
    )
    op.add_column("campaigns", sa.Column("domain_daily_cap", sa.Integer(), nullable=True), schema="queue")


def downgrade() -> None:
    op.drop_column("campaigns", "domain_daily_cap", schema="queue")
    op.drop_column("campaigns", "list_unsubscribe", schema="queue")
    op.drop_table("domain_sends", schema="queue")
    op.drop_index("ix_suppressions_user_id_id", table_name="suppressions", schema="queue")
    op.drop_table("suppressions", schema="queue")
