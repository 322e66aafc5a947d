"""Use cases of templates: create, change, delete, list and read, for v1 and the legacy client.

Every query filters by owner, so another user's template is simply not found (404). Writes go
through a :class:`TemplateWrite` (cache coherence); a change never edits a version, it adds one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from sqlalchemy import BigInteger, Row, any_, delete, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_shared.errors import NotFound
from mailmerger_shared.pagination import encode_cursor
from mailmerger_templates import models
from mailmerger_templates.domain import (
    CURSOR_KIND,
    TemplateContent,
    check_legacy_keys,
    check_size,
    legacy_name,
)
from mailmerger_templates.engine import TemplateEngine, compile_or_explain
from mailmerger_templates.rendering import CompiledTemplate, TemplateSource
from mailmerger_templates.schemas import (
    TemplatePage,
    TemplateRead,
    TemplateSummary,
    TemplateUpdate,
    TemplateVariables,
)
from mailmerger_templates.writes import TemplateWrite

_templates = models.templates
_versions = models.template_versions

# A template with the columns of its current version.
_CURRENT = (
    select(
        _templates.c.id,
        _templates.c.current_version,
        _templates.c.created_at,
        _templates.c.updated_at,
        *(column for column in _versions.c if column.name not in {"template_id", "version", "created_at"}),
    )
    .join(
        _versions,
        (_versions.c.template_id == _templates.c.id) & (_versions.c.version == _templates.c.current_version),
    )
    .where(_templates.c.deleted_at.is_(None))
)


# --- writes ------------------------------------------------------------------------------------


async def create_template(
    write: TemplateWrite, engine: TemplateEngine, user_id: int, content: TemplateContent
) -> TemplateRead:
    """Version 1 of a new template, once it compiles."""
    compiled = await compile_or_explain(engine, content.source)
    await write.changing(user_id)
    template_id = await _insert_template(write.session, user_id)
    await _insert_version(write.session, template_id, 1, content, compiled)
    engine.remember((template_id, 1), compiled)
    return await _current(write.session, user_id, template_id)


async def create_legacy_template(
    write: TemplateWrite, engine: TemplateEngine, user_id: int, t_body: str, t_key: str
) -> int:
    """A template from the legacy client: ``t_body`` is the HTML body, the name and subject are
    :func:`legacy_name`, and ``t_key`` must list exactly the body's placeholders."""
    check_size(engine.limits, TemplateSource(subject="", html=t_body))  # before any database work
    await write.changing(user_id)
    template_id = await _insert_template(write.session, user_id)
    name = legacy_name(template_id)
    content = TemplateContent(name=name, description="", subject=name, html=t_body, text=None)
    compiled = await compile_or_explain(engine, content.source)
    check_legacy_keys(t_key, compiled.variables)
    await _insert_version(write.session, template_id, 1, content, compiled)
    engine.remember((template_id, 1), compiled)
    return template_id


async def update_template(
    write: TemplateWrite, engine: TemplateEngine, user_id: int, template_id: int, changes: TemplateUpdate
) -> TemplateRead:
    """Version n+1 with ``changes`` applied to version n; version n stays as it was."""
    await _new_version(write, engine, user_id, template_id, changes.applied_to)
    return await _current(write.session, user_id, template_id)


async def update_legacy_template(
    write: TemplateWrite, engine: TemplateEngine, user_id: int, template_id: int, t_body: str, t_key: str
) -> None:
    """A new version with the HTML body replaced; ``t_key`` must list exactly its placeholders."""

    def with_body(current: TemplateContent) -> TemplateContent:
        return msgspec.structs.replace(current, html=t_body)

    await _new_version(write, engine, user_id, template_id, with_body, t_key=t_key)


async def delete_template(write: TemplateWrite, user_id: int, template_id: int) -> None:
    """Hide a template from its owner; versions already referenced stay renderable internally."""
    if not await delete_templates(write, user_id, [template_id]):
        raise _not_found(template_id)


async def delete_templates(write: TemplateWrite, user_id: int, template_ids: Sequence[int]) -> list[int]:
    """Delete those of ``template_ids`` the user owns (and has not deleted); their ids, as given."""
    await write.changing(user_id)
    result = await write.session.execute(
        update(_templates)
        .where(
            _templates.c.user_id == user_id,
            # One array parameter, however many ids the legacy client sends (IN would use one each).
            _templates.c.id == any_(literal(list(template_ids), ARRAY(BigInteger))),
            _templates.c.deleted_at.is_(None),
        )
        .values(deleted_at=func.now())
        .returning(_templates.c.id)
    )
    deleted = set(result.scalars())
    return [template_id for template_id in dict.fromkeys(template_ids) if template_id in deleted]


async def purge_user(write: TemplateWrite, user_id: int) -> int:
    """Remove every template and version of a deleted user, and their cache keys. Idempotent."""
    await write.removing(user_id)
    result = await write.session.execute(
        delete(_templates).where(_templates.c.user_id == user_id).returning(_templates.c.id)
    )
    return len(result.all())


async def _insert_template(session: AsyncSession, user_id: int) -> int:
    result = await session.execute(
        insert(_templates).values(user_id=user_id, current_version=1).returning(_templates.c.id)
    )
    template_id: int = result.scalar_one()
    return template_id


async def _insert_version(
    session: AsyncSession,
    template_id: int,
    version: int,
    content: TemplateContent,
    compiled: CompiledTemplate,
) -> None:
    await session.execute(
        insert(_versions).values(
            template_id=template_id,
            version=version,
            **msgspec.structs.asdict(content),
            variables=list(compiled.variables),
            required_fields=list(compiled.required_fields),
        )
    )


async def _new_version(
    write: TemplateWrite,
    engine: TemplateEngine,
    user_id: int,
    template_id: int,
    change: Callable[[TemplateContent], TemplateContent],
    *,
    t_key: str | None = None,
) -> None:
    await write.changing(user_id)
    # Locking the template row serialises concurrent edits: each builds on the one before it. The
    # row is locked on its own, then joined: a locking join would be re-checked against the
    # version row it read before the wait, and find nothing once the other edit moved the version.
    current_version = (
        await write.session.execute(
            select(_templates.c.current_version)
            .where(
                _templates.c.id == template_id,
                _templates.c.user_id == user_id,
                _templates.c.deleted_at.is_(None),
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if current_version is None:
        raise _not_found(template_id)
    row = (await write.session.execute(_CURRENT.where(_templates.c.id == template_id))).one()
    content = change(_content(row))
    compiled = await compile_or_explain(engine, content.source)
    if t_key is not None:
        check_legacy_keys(t_key, compiled.variables)
    version = current_version + 1
    await _insert_version(write.session, template_id, version, content, compiled)
    await write.session.execute(
        update(_templates)
        .where(_templates.c.id == template_id)
        .values(current_version=version, updated_at=func.now())
    )
    engine.remember((template_id, version), compiled)


# --- reads -------------------------------------------------------------------------------------


async def get_template(session: AsyncSession, user_id: int, template_id: int) -> TemplateRead:
    return await _current(session, user_id, template_id)


async def list_templates(
    session: AsyncSession, user_id: int, *, limit: int, after: int | None = None, search: str | None = None
) -> TemplatePage:
    """A page of the user's templates, newest first, optionally those whose name contains ``search``."""
    query = _CURRENT.where(_templates.c.user_id == user_id)
    if after is not None:
        query = query.where(_templates.c.id < after)
    if search:
        query = query.where(_versions.c.name.ilike(f"%{_escape_like(search)}%", escape="\\"))
    rows = (await session.execute(query.order_by(_templates.c.id.desc()).limit(limit + 1))).all()
    items = [
        TemplateSummary(
            id=row.id,
            version=row.current_version,
            name=row.name,
            description=row.description,
            updated_at=row.updated_at,
        )
        for row in rows[:limit]
    ]
    next_cursor = encode_cursor(CURSOR_KIND, items[-1].id) if len(rows) > limit else None
    return TemplatePage(items=items, next_cursor=next_cursor)


async def all_templates(session: AsyncSession, user_id: int) -> list[TemplateRead]:
    """Every template of the user, newest first (the legacy client lists them all at once)."""
    rows = await session.execute(
        _CURRENT.where(_templates.c.user_id == user_id).order_by(_templates.c.id.desc())
    )
    return [_read(row) for row in rows]


async def template_variables(session: AsyncSession, user_id: int, template_id: int) -> TemplateVariables:
    template = await _current(session, user_id, template_id)
    return TemplateVariables(
        template_id=template.id,
        version=template.version,
        variables=template.variables,
        required_fields=template.required_fields,
    )


async def _current(session: AsyncSession, user_id: int, template_id: int) -> TemplateRead:
    row = (
        await session.execute(_CURRENT.where(_templates.c.id == template_id, _templates.c.user_id == user_id))
    ).one_or_none()
    if row is None:
        raise _not_found(template_id)
    return _read(row)


def _read(row: Row[Any]) -> TemplateRead:
    return TemplateRead(
        id=row.id,
        version=row.current_version,
        name=row.name,
        description=row.description,
        subject=row.subject,
        html=row.html,
        text=row.text,
        variables=list(row.variables),
        required_fields=list(row.required_fields),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _content(row: Row[Any]) -> TemplateContent:
    return TemplateContent(
        name=row.name, description=row.description, subject=row.subject, html=row.html, text=row.text
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _not_found(template_id: int) -> NotFound:
    return NotFound(f"template {template_id} does not exist; list yours with GET /v1/templates")
