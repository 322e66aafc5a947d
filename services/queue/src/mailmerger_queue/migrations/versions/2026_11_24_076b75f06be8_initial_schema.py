"""initial schema (empty: the schema and version table only)

Revision ID: 076b75f06be8
Revises:
Create Date: 2026-11-24 06:57:06.181531
"""

from collections.abc import Sequence

revision: str = "076b75f06be8"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The queue's ledger rows are its outbox (see models.py): it needs no outbox table.
    pass


def downgrade() -> None:
    pass
