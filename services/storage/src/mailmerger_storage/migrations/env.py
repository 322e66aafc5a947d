"""Alembic environment of the ``storage`` schema."""

from mailmerger_shared.migrations import run_env
from mailmerger_storage.models import metadata

run_env(metadata)
