"""Alembic environment of the ``storage`` schema."""

from mailmerger_storage.models import metadata
from mailmerger_shared.migrations import run_env

run_env(metadata)
