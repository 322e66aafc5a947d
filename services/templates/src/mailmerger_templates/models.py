"""The tables of the ``templates`` schema.

A template is an identity (``templates``) and a history of immutable snapshots
(``template_versions``). Editing adds version n+1 and moves ``current_version``; a row of
``template_versions`` is never updated, so anything that refers to ``(template_id, version)`` — a
queued campaign — always renders the content it was queued with.

Deleting a template only sets ``deleted_at``: it disappears from every user-facing read, while the
internal version reads that queued mail depends on keep working. Rows are removed for good only
when their owner is deleted (``UserDeleted``), versions with them (``ON DELETE CASCADE``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY

from mailmerger_shared.db import service_metadata

metadata = service_metadata("templates")

templates = Table(
    "templates",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("current_version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
    # Listing walks a user's templates by id (the cursor); purging finds them by user.
    Index("ix_templates_user_id_id", "user_id", "id"),
)

template_versions = Table(
    "template_versions",
    metadata,
    Column("template_id", BigInteger, ForeignKey(templates.c.id, ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),  # (template_id, version) is the key queued mail holds
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text),
    # What the engine found when the version was compiled, so reads need not compile.
    Column("variables", ARRAY(Text), nullable=False),
    Column("required_fields", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("version >= 1", name="version_from_one"),
)
