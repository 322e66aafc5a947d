"""HTTP routes of the templates service."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from mailmerger_templates.api import v1
from mailmerger_templates.api.internal import internal_router
from mailmerger_templates.api.legacy import legacy_router
from mailmerger_templates.settings import TemplatesSettings


def routes(settings: TemplatesSettings) -> list[ControllerRouterHandler]:
    return [*v1.ROUTES, legacy_router(), internal_router(settings)]
