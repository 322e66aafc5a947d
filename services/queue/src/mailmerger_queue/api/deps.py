"""What handlers receive besides the request: the settings and the other services' clients."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency

from mailmerger_queue.adapters.auth import AuthClient
from mailmerger_queue.adapters.storage import StorageClient
from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.settings import QueueSettings

# Declared by name in a handler's signature: ``settings: Settings, templates: Templates``.
Settings: TypeAlias = NamedDependency[QueueSettings]
Templates: TypeAlias = NamedDependency[TemplatesClient]
Storage: TypeAlias = NamedDependency[StorageClient]
Auth: TypeAlias = NamedDependency[AuthClient]
