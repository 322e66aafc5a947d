"""responses: what the mailbox watcher found (replies, auto-replies, bounces), stored Message-IDs

Revision ID: e8b4a6d2c1f9
Revises: d5f2b8c0e7a4
Create Date: 2026-12-07 18:00:00

``responses``, one row per incoming Gmail message applied; on ``messages`` the strongest response
so far (``response``, ``responded_at``) and the Message-ID Gmail stored (``stored_message_id``);
on ``campaigns`` what a reply stops (``stop_on_reply``, ``stop_on_domain_reply``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e8b4a6d2c1f9"
down_revision: str | None = "d5f2b8c0e7a4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = "'reply', 'auto_reply', 'bounce', 'delay'"


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("account_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("gmail_id", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_address", sa.Text(), nullable=False),
        sa.Column("failed_recipient", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"kind IN ({_KINDS})", name=op.f("ck_responses_kind")),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["queue.messages.id"],
            name=op.f("fk_responses_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "gmail_id", name=op.f("pk_responses")),
        schema="queue",
    )
    op.create_index(op.f("ix_responses_message_id"), "responses", ["message_id"], schema="queue")
    op.add_column(
        "messages", sa.Column("stored_message_id", sa.String(length=255), nullable=True), schema="queue"
    )
    op.add_column("messages", sa.Column("response", sa.String(length=16), nullable=True), schema="queue")
    op.add_column(
        "messages", sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True), schema="queue"
    )
    op.create_check_constraint(
        op.f("ck_messages_response"), "messages", f"response IN ({_KINDS})", schema="queue"
    )
    op.add_column(
        "campaigns",
        sa.Column("stop_on_reply", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        schema="queue",
    )
    op.add_column(
        "campaigns",
        sa.Column("stop_on_domain_reply", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        schema="queue",
    )


def downgrade() -> None:
    op.drop_column("campaigns", "stop_on_domain_reply", schema="queue")
    op.drop_column("campaigns", "stop_on_reply", schema="queue")
    op.drop_constraint(op.f("ck_messages_response"), "messages", schema="queue", type_="check")
    op.drop_column("messages", "responded_at", schema="queue")
    op.drop_column("messages", "response", schema="queue")
    op.drop_column("messages", "stored_message_id", schema="queue")
    op.drop_index(op.f("ix_responses_message_id"), table_name="responses", schema="queue")
    op.drop_table("responses", schema="queue")
