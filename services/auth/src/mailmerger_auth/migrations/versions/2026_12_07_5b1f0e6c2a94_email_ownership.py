"""email ownership: confirmed addresses, mailed links, the system's letters

Revision ID: 5b1f0e6c2a94
Revises: 3e71c0a9d5b2
Create Date: 2026-12-07 11:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1f0e6c2a94"
down_revision: str | None = "3e71c0a9d5b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("email_verified_at", sa.DateTime(timezone=True)), schema="auth")
    # Google vouched for the address of every account that signs in with Google; password accounts
    # made before this revision never proved theirs and confirm it by the first mailed link.
    op.execute("UPDATE auth.users SET email_verified_at = created_at WHERE google_sub IS NOT NULL")
    op.create_table(
        "email_links",
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "purpose IN ('confirm_email', 'reset_password')", name=op.f("ck_email_links_purpose")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["auth.users.id"], name=op.f("fk_email_links_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_email_links")),
        schema="auth",
    )
    op.create_index(op.f("ix_email_links_user_id"), "email_links", ["user_id"], schema="auth")
    op.create_table(
        "system_mail",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("encryption_key_id", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_mail")),
        schema="auth",
    )
    op.create_index(op.f("ix_system_mail_next_attempt_at"), "system_mail", ["next_attempt_at"], schema="auth")


def downgrade() -> None:
    op.drop_index(op.f("ix_system_mail_next_attempt_at"), table_name="system_mail", schema="auth")
    op.drop_table("system_mail", schema="auth")
    op.drop_index(op.f("ix_email_links_user_id"), table_name="email_links", schema="auth")
    op.drop_table("email_links", schema="auth")
    op.drop_column("users", "email_verified_at", schema="auth")
