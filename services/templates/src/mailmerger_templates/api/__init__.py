"""HTTP routes of the templates service."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from mailmerger_templates.api.internal import internal_router
from mailmerger_templates.api.legacy import legacy_router
from mailmerger_templates.api.v1 import TemplatesController
from mailmerger_templates.settings import TemplatesSettings


def routes(settings: TemplatesSettings) -> list[ControllerRouterHandler]:
    return [
        TemplatesController,
        legacy_router(),
        internal_router(
            settings.queue_credential.queue_token, max_batch_rows=settings.templates.max_batch_rows
        ),
    ]
