"""Alembic environment of the ``auth`` schema."""

from mailmerger_auth.models import metadata
from mailmerger_shared.migrations import run_env

run_env(metadata)
