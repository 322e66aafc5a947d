"""What the storage routes are given besides the shared ``principal`` and ``tx``: ``attachments``,
the service's use cases (:class:`~mailmerger_storage.use_cases.Attachments`), built once when the
app starts, and ``settings``."""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar import Request
from litestar.di import NamedDependency, Provide

from mailmerger_shared.web.deps import Lifespan, from_state, kept_in_state
from mailmerger_storage.api.early_answers import GATEWAY_REFUSED_HEADER
from mailmerger_storage.settings import StorageSettings
from mailmerger_storage.uploads import IncomingBody
from mailmerger_storage.use_cases import Attachments as AttachmentUseCases


def dependencies(settings: StorageSettings) -> dict[str, Provide]:
    """Every dependency of the storage routes, by the names handlers declare them with."""

    def provide_settings() -> StorageSettings:
        return settings

    return {
        "settings": Provide(provide_settings, sync_to_thread=False, use_cache=True),
        "attachments": from_state("attachments"),
    }


def use_cases_lifespan(settings: StorageSettings) -> Lifespan:
    """Build the use cases into ``app.state.attachments`` once the database and the blob store are
    open (so it comes after ``infrastructure_lifespan`` and ``blob_store_lifespan``)."""
    return kept_in_state(
        "attachments", lambda state: AttachmentUseCases(state.infra.sessions, state.blobs, settings.s3)
    )


Attachments: TypeAlias = NamedDependency[AttachmentUseCases]
Settings: TypeAlias = NamedDependency[StorageSettings]


def incoming_body(request: Request[Any, Any, Any]) -> IncomingBody:
    """The request's body as a stream (upload routes never let Litestar parse or buffer it)."""
    return IncomingBody(
        chunks=request.stream(),
        content_type=request.headers.get("content-type"),
        content_length=request.content_length,
        refused_by_gateway=GATEWAY_REFUSED_HEADER in request.headers,
    )
