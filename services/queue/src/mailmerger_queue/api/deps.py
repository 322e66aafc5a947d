"""What the queue routes are given besides the shared ``principal`` and ``tx``: the settings and the
other services' clients (opened by ``app``'s lifespan, kept in the app's state)."""

from __future__ import annotations

from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from mailmerger_queue.adapters.auth import AuthClient
from mailmerger_queue.adapters.storage import StorageClient
from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.settings import QueueSettings


def dependencies(settings: QueueSettings) -> dict[str, Provide]:
    """Every dependency of the queue routes, by the names handlers declare them with."""

    def provide_settings() -> QueueSettings:
        return settings

    return {
        "settings": Provide(provide_settings, sync_to_thread=False, use_cache=True),
        "templates": Provide(provide_templates, sync_to_thread=False),
        "storage": Provide(provide_storage, sync_to_thread=False),
        "auth": Provide(provide_auth, sync_to_thread=False),
    }


def provide_templates(state: State) -> TemplatesClient:
    client: TemplatesClient = state.templates
    return client


def provide_storage(state: State) -> StorageClient:
    client: StorageClient = state.storage
    return client


def provide_auth(state: State) -> AuthClient:
    client: AuthClient = state.auth
    return client


# Declared by name in a handler's signature: ``settings: Settings, templates: Templates``.
Settings: TypeAlias = NamedDependency[QueueSettings]
Templates: TypeAlias = NamedDependency[TemplatesClient]
Storage: TypeAlias = NamedDependency[StorageClient]
Auth: TypeAlias = NamedDependency[AuthClient]
