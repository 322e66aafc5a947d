"""an authorization remembers the scopes it asked for

Revision ID: 8d3a6c1e5f20
Revises: 5b1f0e6c2a94
Create Date: 2026-12-07 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "8d3a6c1e5f20"
down_revision: str | None = "5b1f0e6c2a94"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Granular consent: the callback compares what was asked with what the user ticked. States
    # started before this revision live ten minutes at most; they asked for the default scopes.
    op.add_column(
        "oauth_states",
        sa.Column("scopes", ARRAY(sa.Text()), nullable=False, server_default="{}"),
        schema="auth",
    )


def downgrade() -> None:
    op.drop_column("oauth_states", "scopes", schema="auth")
