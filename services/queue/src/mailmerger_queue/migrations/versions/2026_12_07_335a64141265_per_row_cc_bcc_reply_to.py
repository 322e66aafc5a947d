"""per-row Cc, Bcc and Reply-To: the campaign's columns, the row's addresses, the message's Reply-To

Revision ID: 335a64141265
Revises: e8b4a6d2c1f9
Create Date: 2026-12-07 18:30:00

On ``campaigns`` the list columns that hold each row's Cc, Bcc and Reply-To addresses
(``cc_column``, ``bcc_column``, ``reply_to_column``; NULL: none); on ``recipients`` the addresses
read from them (``cc_addrs``, ``bcc_addrs``, ``reply_to_addrs``); on ``messages`` its Reply-To
(``reply_to_addrs``; ``cc_addrs`` and ``bcc_addrs`` already exist). Every existing row gets none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "335a64141265"
down_revision: str | None = "e8b4a6d2c1f9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CAMPAIGN_COLUMNS = ("cc_column", "bcc_column", "reply_to_column")
_RECIPIENT_COLUMNS = ("cc_addrs", "bcc_addrs", "reply_to_addrs")


def _addresses(name: str) -> sa.Column[object]:
    return sa.Column(name, postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False)


def upgrade() -> None:
    for name in _CAMPAIGN_COLUMNS:
        op.add_column("campaigns", sa.Column(name, sa.String(length=200), nullable=True), schema="queue")
    for name in _RECIPIENT_COLUMNS:
        op.add_column("recipients", _addresses(name), schema="queue")
    op.add_column("messages", _addresses("reply_to_addrs"), schema="queue")


def downgrade() -> None:
    op.drop_column("messages", "reply_to_addrs", schema="queue")
    for name in reversed(_RECIPIENT_COLUMNS):
        op.drop_column("recipients", name, schema="queue")
    for name in reversed(_CAMPAIGN_COLUMNS):
        op.drop_column("campaigns", name, schema="queue")
