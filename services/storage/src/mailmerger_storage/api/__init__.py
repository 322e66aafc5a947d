"""HTTP routes of the storage service."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from mailmerger_storage.api.internal import internal_router
from mailmerger_storage.api.legacy import upload_file
from mailmerger_storage.api.v1 import AttachmentsController
from mailmerger_storage.settings import StorageSettings


def route_handlers(settings: StorageSettings) -> list[ControllerRouterHandler]:
    return [AttachmentsController, upload_file, internal_router(settings.queue_credential.queue_token)]
