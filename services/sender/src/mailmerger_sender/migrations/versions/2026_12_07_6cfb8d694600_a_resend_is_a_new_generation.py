"""a resend is a new generation

Revision ID: 6cfb8d694600
Revises: b04d2f6e8a17
Create Date: 2026-12-07 10:45:19.028394

A ``failed`` or ``unconfirmed`` delivery is claimed again by a command of a newer generation (the
user's resend); ``uncertain_since`` keeps when an unconfirmed attempt was claimed, so the resend
looks it up in the mailbox first.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6cfb8d694600"
down_revision: str | None = "b04d2f6e8a17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "deliveries",
        sa.Column("generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
        schema="sender",
    )
    op.add_column(
        "deliveries", sa.Column("uncertain_since", sa.DateTime(timezone=True), nullable=True), schema="sender"
    )


def downgrade() -> None:
    op.drop_column("deliveries", "uncertain_since", schema="sender")
    op.drop_column("deliveries", "generation", schema="sender")
