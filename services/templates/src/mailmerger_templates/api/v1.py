"""``/v1/templates``: the user's templates, their placeholders, validation and preview."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post
from litestar.enums import MediaType
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.types import ControllerRouterHandler

from mailmerger_shared.pagination import decode_cursor
from mailmerger_shared.web.deps import CurrentUser, ResourceId, Transaction
from mailmerger_shared.web.openapi import problems
from mailmerger_templates import service, versions
from mailmerger_templates.api.deps import Templates, UserRequest
from mailmerger_templates.domain import MAX_VERSION, VERSIONS_CURSOR_KIND
from mailmerger_templates.rendering import TemplateSource
from mailmerger_templates.schemas import (
    Preview,
    PreviewRequest,
    SourceCheck,
    SourceCheckRequest,
    TemplateCreate,
    TemplatePage,
    TemplateRead,
    TemplateUpdate,
    TemplateVariables,
    TemplateVersionPage,
    TemplateVersionRead,
)

PathTemplateId = ResourceId
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="Templates per page")]
Search = Annotated[str | None, QueryParameter(max_length=200, description="Part of the name, any case")]
Cursor = Annotated[str | None, QueryParameter(max_length=64, description="next_cursor of the previous page")]
VersionLimit = Annotated[int, QueryParameter(ge=1, le=100, description="Versions per page")]
PathVersion = Annotated[int, PathParameter(ge=1, le=MAX_VERSION, description="A version number, from 1")]


class TemplatesController(Controller):
    path = "/v1/templates"
    tags = ["templates"]

    @post("/", responses=problems(413, 422))
    async def create_template(
        self, data: JSONBody[TemplateCreate], principal: CurrentUser, templates: Templates
    ) -> TemplateRead:
        """Create a template (version 1). 422 lists every problem with its part, line and column."""
        return await templates.create(principal.user_id, data.content())

    # Cached reads answer the cached JSON bytes as they are: no decoding, no re-encoding. They take
    # the user from the request, so that ``templates`` is their only dependency (see deps.UserRequest).
    @get("/", responses={200: ResponseSpec(TemplatePage, description="A page of templates")})
    async def list_templates(
        self,
        request: UserRequest,
        templates: Templates,
        limit: Limit = 20,
        cursor: Cursor = None,
        q: Search = None,
    ) -> Response[bytes]:
        """The user's templates, newest first, a page at a time; ``q`` searches names."""
        body = await templates.page_json(request.user.user_id, limit=limit, cursor=cursor, search=q)
        return Response(body, media_type=MediaType.JSON)

    @get("/{template_id:int}", responses={200: ResponseSpec(TemplateRead, description="The template")})
    async def get_template(
        self, template_id: PathTemplateId, request: UserRequest, templates: Templates
    ) -> Response[bytes]:
        """The template as of its current version."""
        body = await templates.template_json(request.user.user_id, template_id)
        return Response(body, media_type=MediaType.JSON)

    @patch("/{template_id:int}", responses=problems(413, 422))
    async def update_template(
        self,
        template_id: PathTemplateId,
        data: JSONBody[TemplateUpdate],
        principal: CurrentUser,
        templates: Templates,
    ) -> TemplateRead:
        """Save version n+1 with the fields given changed; earlier versions stay as they were."""
        return await templates.update(principal.user_id, template_id, data)

    @delete("/{template_id:int}")
    async def delete_template(
        self, template_id: PathTemplateId, principal: CurrentUser, templates: Templates
    ) -> None:
        """Delete the template for its owner; mail already queued with it is still sent as queued."""
        await templates.delete(principal.user_id, template_id)

    @get(
        "/{template_id:int}/versions",
        responses={200: ResponseSpec(TemplateVersionPage, description="A page of versions")},
    )
    async def list_template_versions(
        self,
        template_id: PathTemplateId,
        principal: CurrentUser,
        tx: Transaction,
        limit: VersionLimit = 20,
        cursor: Cursor = None,
    ) -> TemplateVersionPage:
        """The template's saved versions, newest first, a page at a time; ``current`` marks the one in use."""
        after = decode_cursor(VERSIONS_CURSOR_KIND, cursor) if cursor is not None else None
        return await versions.list_versions(tx, principal.user_id, template_id, limit=limit, after=after)

    @get(
        "/{template_id:int}/versions/{version:int}",
        responses={200: ResponseSpec(TemplateVersionRead, description="The version as it was saved")},
    )
    async def get_template_version(
        self, template_id: PathTemplateId, version: PathVersion, principal: CurrentUser, tx: Transaction
    ) -> TemplateVersionRead:
        """One version of the template, current or earlier, in full; 404 names what does not exist."""
        return await versions.get_version(tx, principal.user_id, template_id, version)

    @get("/{template_id:int}/variables")
    async def template_variables(
        self, template_id: PathTemplateId, principal: CurrentUser, tx: Transaction
    ) -> TemplateVariables:
        """The placeholders the current version reads, and which of them a row must provide."""
        return await service.template_variables(tx, principal.user_id, template_id)

    @post("/validate", status_code=200, responses=problems(413, 422))
    async def validate_template(
        self, data: JSONBody[SourceCheckRequest], templates: Templates
    ) -> SourceCheck:
        """Check a template without saving it: its fields, or 422 with every problem and its place."""
        source = TemplateSource(subject=data.subject, html=data.html, text=data.text)
        return await templates.check_source(source)

    @post("/{template_id:int}/preview", status_code=200, responses=problems(422))
    async def preview_template(
        self,
        template_id: PathTemplateId,
        data: JSONBody[PreviewRequest],
        principal: CurrentUser,
        templates: Templates,
    ) -> Preview:
        """Render the current version for one recipient row; 422 names missing fields."""
        return await templates.preview(principal.user_id, template_id, data.fields)


ROUTES: list[ControllerRouterHandler] = [TemplatesController]
