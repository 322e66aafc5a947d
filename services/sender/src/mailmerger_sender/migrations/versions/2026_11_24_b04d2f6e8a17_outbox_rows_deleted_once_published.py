"""outbox rows are deleted once published

Revision ID: b04d2f6e8a17
Revises: 9bd3383fb180
Create Date: 2026-11-24 16:30:00.000000

The relay deletes a row in the transaction where the broker confirmed it, instead of setting
published_at and pruning a day later: the table holds only what is still to publish.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b04d2f6e8a17"
down_revision: str | None = "9bd3383fb180"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM sender.outbox WHERE published_at IS NOT NULL")
    op.drop_index("ix_outbox_pending", table_name="outbox", schema="sender")
    op.drop_column("outbox", "published_at", schema="sender")
    op.create_index("ix_outbox_occurred_at", "outbox", ["occurred_at"], unique=False, schema="sender")


def downgrade() -> None:
    op.drop_index("ix_outbox_occurred_at", table_name="outbox", schema="sender")
    op.add_column(
        "outbox", sa.Column("published_at", sa.DateTime(timezone=True), nullable=True), schema="sender"
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["occurred_at"],
        unique=False,
        schema="sender",
        postgresql_where=sa.text("published_at IS NULL"),
    )
