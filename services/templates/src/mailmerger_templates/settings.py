"""Everything the templates service reads from the environment."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from mailmerger_shared.settings import (
    HttpServiceSettings,
    QueueCredential,
    Settings,
)

Positive = Annotated[int, msgspec.Meta(gt=0)]


class TemplatesConfig(Settings, frozen=True, kw_only=True):
    prefix: ClassVar[str] = "MM_TEMPLATES_"
    # How long a cached read may sit unused in Redis. Freshness never depends on it: every write
    # invalidates explicitly (see cache.py); it only bounds memory.
    cache_ttl_seconds: Positive = 300
    # Compiled template versions kept in process (LRU); a version never changes, so never stale.
    compiled_cache_size: Positive = 512
    # Compiles and renders running at once in worker threads; a maximum-size compile takes ~2 s.
    engine_threads: Positive = 4
    # Rows one internal render-batch call may carry.
    max_batch_rows: Positive = 1000


class TemplatesSettings(HttpServiceSettings, frozen=True, kw_only=True):
    queue_credential: QueueCredential  # the only caller of its internal routes
    templates: TemplatesConfig
