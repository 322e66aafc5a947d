"""Use cases of the mail merge itself: checking a source, previewing one row, rendering a campaign's rows.

Previews use a template's current version, and only while it is not deleted. Internal reads and
renders name the version explicitly and ignore deletion: a campaign queued before a template was
edited or deleted still renders exactly what was queued. Both check the owner.

Rendering happens after the version has been read and its transaction closed, so a slow render
never holds a database connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_shared.db import transaction
from mailmerger_shared.errors import NotFound, TooLarge
from mailmerger_shared.internal_api import (
    RenderBatchRequest,
    RenderBatchResponse,
    RenderedRow,
    TemplateVersionInfo,
)
from mailmerger_templates import models
from mailmerger_templates.domain import MAX_ID, MAX_VERSION
from mailmerger_templates.engine import TemplateEngine, compile_or_explain
from mailmerger_templates.errors import InvalidTemplate, MissingFields, RowNotRendered, row_error_kind
from mailmerger_templates.rendering import (
    CompiledTemplate,
    Rendered,
    RenderError,
    TemplateInvalid,
    TemplateSource,
)
from mailmerger_templates.schemas import Preview, SourceCheck

_templates = models.templates
_versions = models.template_versions


async def check_source(engine: TemplateEngine, source: TemplateSource) -> SourceCheck:
    """The fields a valid source reads; an invalid one is answered 422 listing every problem."""
    compiled = await compile_or_explain(engine, source)
    return SourceCheck(
        valid=True, variables=list(compiled.variables), required_fields=list(compiled.required_fields)
    )


async def preview(
    sessions: async_sessionmaker[AsyncSession],
    engine: TemplateEngine,
    user_id: int,
    template_id: int,
    fields: Mapping[str, Any],
) -> Preview:
    """The current version rendered for one row, or 422 saying what the row lacks or what failed."""
    async with transaction(sessions) as session:
        stored = await _find_version(
            session,
            _templates.c.id == template_id,
            _templates.c.user_id == user_id,
            _templates.c.deleted_at.is_(None),
            _versions.c.version == _templates.c.current_version,
        )
    if stored is None:
        raise NotFound(f"template {template_id} does not exist; list yours with GET /v1/templates")
    compiled = await _compiled(engine, stored)
    try:
        rendered = await engine.render(compiled, fields)
    except RenderError as error:
        raise RowNotRendered(error) from None
    return Preview(subject=rendered.subject, html=rendered.html, text=rendered.text)


async def version_info(
    session: AsyncSession, user_id: int, template_id: int, version: int
) -> TemplateVersionInfo:
    stored = await _owned_version(session, user_id, template_id, version)
    return TemplateVersionInfo(
        template_id=stored.template_id,
        version=stored.version,
        subject=stored.source.subject,
        html=stored.source.html,
        text=stored.source.text,
        variables=stored.variables,
    )


async def render_batch(
    sessions: async_sessionmaker[AsyncSession],
    engine: TemplateEngine,
    request: RenderBatchRequest,
    *,
    max_rows: int,
) -> RenderBatchResponse:
    """One result per row, in order: the rendered mail, or why that row cannot be rendered."""
    if len(request.rows) > max_rows:
        raise TooLarge(
            f"a batch may hold at most {max_rows} rows, this one has {len(request.rows)}; split it",
            extra={"limit_rows": max_rows},
        )
    async with transaction(sessions) as session:
        stored = await _owned_version(session, request.user_id, request.template_id, request.version)
    compiled = await _compiled(engine, stored)
    results = await engine.render_batch(compiled, request.rows)
    return RenderBatchResponse(
        results=[
            RenderedRow(ok=True, subject=result.subject, html=result.html, text=result.text)
            if isinstance(result, Rendered)
            else _row_error(result.error)
            for result in results
        ]
    )


async def _owned_version(
    session: AsyncSession, user_id: int, template_id: int, version: int
) -> _StoredVersion:
    stored = None
    # The request's numbers come unchecked from another service; out of range, they name nothing.
    if 0 < template_id <= MAX_ID and 0 < user_id <= MAX_ID and 0 < version <= MAX_VERSION:
        stored = await _find_version(
            session,
            _templates.c.id == template_id,
            _templates.c.user_id == user_id,
            _versions.c.version == version,
        )
    if stored is None:
        raise NotFound(f"user {user_id} has no template {template_id} with a version {version}")
    return stored


async def _compiled(engine: TemplateEngine, stored: _StoredVersion) -> CompiledTemplate:
    try:
        return await engine.compiled((stored.template_id, stored.version), stored.source)
    except TemplateInvalid as invalid:  # stored before a stricter engine was deployed
        context = f"version {stored.version} no longer passes the template rules; save a corrected version"
        raise InvalidTemplate(invalid, context) from None


class _StoredVersion(NamedTuple):
    template_id: int
    version: int
    source: TemplateSource
    variables: list[str]


async def _find_version(session: AsyncSession, *conditions: ColumnElement[bool]) -> _StoredVersion | None:
    query = (
        select(
            _versions.c.template_id,
            _versions.c.version,
            _versions.c.subject,
            _versions.c.html,
            _versions.c.text,
            _versions.c.variables,
        )
        .join(_templates, _templates.c.id == _versions.c.template_id)
        .where(*conditions)
    )
    row = (await session.execute(query)).one_or_none()
    if row is None:
        return None
    template_id, version, subject, html, text, variables = row
    return _StoredVersion(template_id, version, TemplateSource(subject, html, text), list(variables))


def _row_error(error: RenderError) -> RenderedRow:
    missing = list(error.names) if isinstance(error, MissingFields) else []
    return RenderedRow(ok=False, error=row_error_kind(error), detail=str(error), missing=missing)
