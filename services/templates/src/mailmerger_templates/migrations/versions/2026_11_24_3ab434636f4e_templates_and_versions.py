"""templates and versions

Revision ID: 3ab434636f4e
Revises: 2d49942a5953
Create Date: 2026-11-24 07:15:03.597370
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3ab434636f4e"
down_revision: str | None = "2d49942a5953"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_templates")),
        schema="templates",
    )
    op.create_index(
        "ix_templates_user_id_id", "templates", ["user_id", "id"], unique=False, schema="templates"
    )
    op.create_table(
        "template_versions",
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("variables", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("required_fields", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_template_versions_version_from_one")),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.templates.id"],
            name=op.f("fk_template_versions_template_id_templates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("template_id", "version", name=op.f("pk_template_versions")),
        schema="templates",
    )


def downgrade() -> None:
    op.drop_table("template_versions", schema="templates")
    op.drop_index("ix_templates_user_id_id", table_name="templates", schema="templates")
    op.drop_table("templates", schema="templates")
