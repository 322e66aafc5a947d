"""``/internal/templates``: what the queue service reads and renders, by ``(template_id, version)``.

Only the queue service may call them (its credential instead of a user token); the owner is a parameter, and a
version the named user does not own is a 404. Deleted templates stay readable here (see merge.py).
"""

from __future__ import annotations

from typing import Annotated

from litestar import Router, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from mailmerger_shared.internal_api import RenderBatchRequest, RenderBatchResponse, TemplateVersionInfo
from mailmerger_shared.web.auth import requires_caller
from mailmerger_shared.web.deps import Transaction
from mailmerger_templates import merge
from mailmerger_templates.api.deps import Templates
from mailmerger_templates.domain import MAX_ID, MAX_VERSION
from mailmerger_templates.settings import TemplatesSettings


@get("/templates/{template_id:int}/versions/{version:int}")
async def template_version(
    template_id: Annotated[int, PathParameter(ge=1, le=MAX_ID)],
    version: Annotated[int, PathParameter(ge=1, le=MAX_VERSION)],
    user_id: Annotated[int, QueryParameter(ge=1, le=MAX_ID)],
    tx: Transaction,
) -> TemplateVersionInfo:
    return await merge.version_info(tx, user_id, template_id, version)


@post("/render-batch", status_code=200)
async def render_batch(data: JSONBody[RenderBatchRequest], templates: Templates) -> RenderBatchResponse:
    return await templates.render_batch(data)


def internal_router(settings: TemplatesSettings) -> Router:
    return Router(
        path="/internal/templates",
        route_handlers=[template_version, render_batch],
        guards=[requires_caller("queue", credentials={"queue": settings.queue_credential.queue_token})],
        opt={"exclude_from_auth": True},
        include_in_schema=False,
    )
