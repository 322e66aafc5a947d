"""What the storage routes are given besides the shared ``principal`` and ``tx``."""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_storage.adapters.blobs import BlobStore
from mailmerger_storage.api.early_answers import GATEWAY_REFUSED_HEADER
from mailmerger_storage.settings import StorageSettings
from mailmerger_storage.uploads import IncomingBody


def dependencies(settings: StorageSettings) -> dict[str, Provide]:
    """Every dependency of the storage routes, by the names handlers declare them with."""

    def provide_settings() -> StorageSettings:
        return settings

    return {
        "settings": Provide(provide_settings, sync_to_thread=False, use_cache=True),
        "blobs": Provide(provide_blobs, sync_to_thread=False),
        "sessions": Provide(provide_sessions, sync_to_thread=False),
    }


def provide_blobs(state: State) -> BlobStore:
    blobs: BlobStore = state.blobs
    return blobs


def provide_sessions(state: State) -> async_sessionmaker[AsyncSession]:
    """For uploads, which open their one short transaction only after the body has streamed."""
    sessions: async_sessionmaker[AsyncSession] = state.infra.sessions
    return sessions


Blobs: TypeAlias = NamedDependency[BlobStore]
Sessions: TypeAlias = NamedDependency[async_sessionmaker[AsyncSession]]
Settings: TypeAlias = NamedDependency[StorageSettings]


def incoming_body(request: Request[Any, Any, Any]) -> IncomingBody:
    """The request's body as a stream (upload routes never let Litestar parse or buffer it)."""
    return IncomingBody(
        chunks=request.stream(),
        content_type=request.headers.get("content-type"),
        content_length=request.content_length,
        refused_by_gateway=GATEWAY_REFUSED_HEADER in request.headers,
    )
