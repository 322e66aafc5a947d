"""Alembic environment of the ``templates`` schema."""

from mailmerger_templates.models import metadata
from mailmerger_shared.migrations import run_env

run_env(metadata)
