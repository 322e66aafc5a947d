"""HTTP routes of the storage service."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from mailmerger_storage.api import legacy, v1
from mailmerger_storage.api.internal import internal_router
from mailmerger_storage.settings import StorageSettings


def routes(settings: StorageSettings) -> list[ControllerRouterHandler]:
    return [*v1.ROUTES, *legacy.ROUTES, internal_router(settings)]
