"""Alembic environment of the ``queue`` schema."""

from mailmerger_queue.models import metadata
from mailmerger_shared.migrations import run_env

run_env(metadata)
