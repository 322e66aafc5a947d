"""Alembic environment of the ``templates`` schema."""

from mailmerger_shared.migrations import run_env
from mailmerger_templates.models import metadata

run_env(metadata)
