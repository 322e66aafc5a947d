"""The runner's own settings: what only the all-in-one mode reads.

Kept apart from ``cli``, ``serve`` and ``configuration`` so that each of them can import it and none
needs another (an import-linter contract in pyproject.toml keeps it that way).
"""

from __future__ import annotations

from typing import ClassVar

from mailmerger_shared.settings import Settings


class RunSettings(Settings, frozen=True, kw_only=True):
    """Only the all-in-one mode reads these; unset, each follows MM_HTTP_PORT (+ 1, + 2)."""

    prefix: ClassVar[str] = "MM_RUN_"
    internal_port: int | None = None  # /internal/... routes; never the public port (MM_HTTP_PORT + 1)
    local_s3_port: int | None = None  # the local S3 stand-in, when no S3 is configured (MM_HTTP_PORT + 2)
