"""attachments

Blobs (one S3 object per user and content hash), the attachments that name them, and each user's
designated resume and cover letter.

Revision ID: 08dfa9b93318
Revises: 45f679b4a2b6
Create Date: 2026-11-24 07:11:13.705071
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "08dfa9b93318"
down_revision: str | None = "45f679b4a2b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("object_key", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("size > 0", name=op.f("ck_blobs_size_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blobs")),
        sa.UniqueConstraint("object_key", name=op.f("uq_blobs_object_key")),
        sa.UniqueConstraint("user_id", "sha256", name=op.f("uq_blobs_user_id_sha256")),
        schema="storage",
    )
    op.create_table(
        "attachments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("blob_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('resume', 'cover_letter', 'other')", name=op.f("ck_attachments_kind")),
        sa.ForeignKeyConstraint(["blob_id"], ["storage.blobs.id"], name=op.f("fk_attachments_blob_id_blobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
        schema="storage",
    )
    op.create_index(
        op.f("ix_attachments_blob_id"), "attachments", ["blob_id"], unique=False, schema="storage"
    )
    op.create_index(
        op.f("ix_attachments_user_id_id"), "attachments", ["user_id", "id"], unique=False, schema="storage"
    )
    op.create_table(
        "designations",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("attachment_id", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('resume', 'cover_letter')", name=op.f("ck_designations_kind")),
        sa.ForeignKeyConstraint(
            ["attachment_id"],
            ["storage.attachments.id"],
            name=op.f("fk_designations_attachment_id_attachments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "kind", name=op.f("pk_designations")),
        sa.UniqueConstraint("attachment_id", name=op.f("uq_designations_attachment_id")),
        schema="storage",
    )


def downgrade() -> None:
    op.drop_table("designations", schema="storage")
    op.drop_index(op.f("ix_attachments_user_id_id"), table_name="attachments", schema="storage")
    op.drop_index(op.f("ix_attachments_blob_id"), table_name="attachments", schema="storage")
    op.drop_table("attachments", schema="storage")
    op.drop_table("blobs", schema="storage")
