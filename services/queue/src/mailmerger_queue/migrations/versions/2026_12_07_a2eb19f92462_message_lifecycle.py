"""message lifecycle

Revision ID: a2eb19f92462
Revises: 3c9d41a7e2b5
Create Date: 2026-12-07 10:45:50.862576

A resend is a new generation of its message; senders are paced per Google account (the lowercased
Gmail address, computed); a campaign counts its consecutive failures and says why it paused itself.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a2eb19f92462"
down_revision: str | None = "3c9d41a7e2b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaigns",
        sa.Column("consecutive_failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        schema="queue",
    )
    op.add_column("campaigns", sa.Column("paused_reason", sa.Text(), nullable=True), schema="queue")
    op.add_column(
        "messages",
        sa.Column("generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
        schema="queue",
    )
    op.add_column(
        "senders",
        sa.Column(
            "google_key", sa.String(length=320), sa.Computed("lower(email)", persisted=True), nullable=False
        ),
        schema="queue",
    )
    op.create_index("ix_senders_google_key", "senders", ["google_key"], unique=False, schema="queue")


def downgrade() -> None:
    op.drop_index("ix_senders_google_key", table_name="senders", schema="queue")
    op.drop_column("senders", "google_key", schema="queue")
    op.drop_column("messages", "generation", schema="queue")
    op.drop_column("campaigns", "paused_reason", schema="queue")
    op.drop_column("campaigns", "consecutive_failures", schema="queue")
