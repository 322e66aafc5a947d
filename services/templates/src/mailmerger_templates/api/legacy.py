"""``/api/templates``: the legacy client's routes, thin adapters over the v1 use cases.

A legacy template is ``{"template_id", "uid", "t_body", "t_key"}``: ``t_body`` is the HTML body,
``t_key`` the comma-separated fields the template reads (sorted). Templates the legacy client
creates are named ``Template <id>``, and that is also their subject (the legacy client types each
email's subject itself); v1 can change both.

Every answer, errors included, is the envelope ``{"success", "status_code", "message", "data"}``
with the real HTTP status. Unlike v1, request bodies tolerate unknown fields: the legacy client is
fixed, and refusing a field it may add would break it for no benefit.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, delete, get, patch, post
from litestar.enums import MediaType
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_shared.web.deps import MAX_RESOURCE_ID, CurrentUser
from mailmerger_shared.web.openapi import documented_body, id_list, problems
from mailmerger_shared.web.problems import EXCEPTION_HANDLERS
from mailmerger_templates import service
from mailmerger_templates.api.deps import Templates, UserRequest
from mailmerger_templates.domain import legacy_keys
from mailmerger_templates.schemas import TemplateId, TemplateRead


class LegacyTemplate(msgspec.Struct, frozen=True, kw_only=True):
    template_id: int
    uid: int
    t_body: str
    t_key: str


class NewLegacyTemplate(msgspec.Struct, frozen=True, kw_only=True):
    t_body: str
    t_key: str


class ChangedLegacyTemplate(msgspec.Struct, frozen=True, kw_only=True):
    template_id: TemplateId
    t_body: str
    t_key: str


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    success: bool
    status_code: int
    message: str
    data: dict[str, Any]


def _ok(message: str, data: dict[str, Any], status: int = 200) -> Response[Envelope]:
    return Response(
        Envelope(success=True, status_code=status, message=message, data=data), status_code=status
    )


def _legacy(template: TemplateRead, user_id: int) -> LegacyTemplate:
    return LegacyTemplate(
        template_id=template.id, uid=user_id, t_body=template.html, t_key=legacy_keys(template.variables)
    )


_encoder = msgspec.json.Encoder()


# The client loads this on every page: served like v1's list, as cached bytes of the whole answer
# (and, like it, with ``templates`` its only dependency: see deps.UserRequest).
@get("/get-all-templates", responses={200: ResponseSpec(Envelope, description="Every template")})
async def get_all_templates(request: UserRequest, templates: Templates) -> Response[bytes]:
    user_id = request.user.user_id

    async def produce(session: AsyncSession) -> bytes:
        listed = [_legacy(template, user_id) for template in await service.all_templates(session, user_id)]
        return _encoder.encode(
            Envelope(success=True, status_code=200, message="templates", data={"templates": listed})
        )

    return Response(await templates.cached_json(user_id, "legacy:all", produce), media_type=MediaType.JSON)


@post("/add-template", responses=problems(413, 422))
async def add_template(
    data: JSONBody[NewLegacyTemplate], principal: CurrentUser, templates: Templates
) -> Response[Envelope]:
    template_id = await templates.create_legacy(principal.user_id, data.t_body, data.t_key)
    return _ok("template added", {"template_id": template_id}, status=201)


@patch("/update-template", responses=problems(404, 413, 422))
async def update_template(
    data: JSONBody[ChangedLegacyTemplate], principal: CurrentUser, templates: Templates
) -> Response[Envelope]:
    await templates.update_legacy(principal.user_id, data.template_id, data.t_body, data.t_key)
    return _ok("template updated", {"template_id": data.template_id})


# The legacy client sends the ids as the JSON body of a DELETE.
@delete(
    "/delete-template",
    status_code=200,
    operation_class=documented_body({"application/json": id_list(minimum=1, maximum=MAX_RESOURCE_ID)}),
)
async def delete_template(
    data: JSONBody[list[TemplateId]], principal: CurrentUser, templates: Templates
) -> Response[Envelope]:
    deleted = await templates.delete_many(principal.user_id, data)
    return _ok(f"{len(deleted)} template(s) deleted", {"template_ids": deleted})


_PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


def _as_envelope(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Any error as the legacy envelope: the status, detail and extras v1 would give, re-wrapped."""
    handler = next(EXCEPTION_HANDLERS[kind] for kind in type(exc).__mro__ if kind in EXCEPTION_HANDLERS)
    problem = handler(request, exc)
    body: dict[str, Any] = msgspec.json.decode(problem.content)
    extras = {key: value for key, value in body.items() if key not in _PROBLEM_MEMBERS}
    status = problem.status_code or 500
    envelope = Envelope(success=False, status_code=status, message=body.get("detail", ""), data=extras)
    return Response(envelope, status_code=status, headers=problem.headers)


def legacy_router() -> Router:
    return Router(
        path="/api/templates",
        route_handlers=[get_all_templates, add_template, update_template, delete_template],
        # Every kind the app maps, or the app's own (closer by type) would answer problem+json.
        exception_handlers=dict.fromkeys(EXCEPTION_HANDLERS, _as_envelope),
        tags=["legacy"],
    )
