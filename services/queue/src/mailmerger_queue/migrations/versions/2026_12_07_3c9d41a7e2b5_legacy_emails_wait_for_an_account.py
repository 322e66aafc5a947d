"""legacy emails wait for an account

Revision ID: 3c9d41a7e2b5
Revises: 150f2e95cd6a
Create Date: 2026-12-07 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c9d41a7e2b5"
down_revision: str | None = "150f2e95cd6a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("messages", "account_id", existing_type=sa.BigInteger(), nullable=True, schema="queue")
    op.create_check_constraint(
        op.f("ck_messages_unassigned_is_direct"),
        "messages",
        "account_id IS NOT NULL OR campaign_id IS NULL",
        schema="queue",
    )
    op.create_index(
        "ix_messages_unassigned",
        "messages",
        ["user_id"],
        unique=False,
        schema="queue",
        postgresql_where=sa.text("account_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_messages_unassigned",
        table_name="messages",
        schema="queue",
        postgresql_where=sa.text("account_id IS NULL"),
    )
    op.drop_constraint(op.f("ck_messages_unassigned_is_direct"), "messages", schema="queue", type_="check")
    op.execute("DELETE FROM queue.messages WHERE account_id IS NULL")
    op.alter_column("messages", "account_id", existing_type=sa.BigInteger(), nullable=False, schema="queue")
