"""The tables of the ``storage`` schema."""

from __future__ import annotations

from mailmerger_shared.db import service_metadata
from mailmerger_shared.outbox import outbox_table

metadata = service_metadata("storage")

# Events this service publishes are staged here in the business transaction.
outbox = outbox_table(metadata)
