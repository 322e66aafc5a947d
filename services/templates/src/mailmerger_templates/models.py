"""The tables of the ``templates`` schema."""

from __future__ import annotations

from mailmerger_shared.db import service_metadata

metadata = service_metadata("templates")
