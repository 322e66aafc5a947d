"""Alembic environment of the ``sender`` schema."""

from mailmerger_sender.models import metadata
from mailmerger_shared.migrations import run_env

run_env(metadata)
