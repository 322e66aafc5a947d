"""Reading a template's saved versions: the list of them, newest first, and any one in full.

Versions are numbered 1 to the template's current version with no gaps (a version is never
removed or changed), so the list is keyset-paginated by version number. Like every user-facing
read, only the owner sees them, and only while the template is not deleted; another user's
template, or a deleted one, is a 404. (The queue reads versions through the internal API, deleted
or not: see merge.py.)
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_shared.errors import NotFound
from mailmerger_shared.pagination import encode_cursor
from mailmerger_templates import models
from mailmerger_templates.domain import VERSIONS_CURSOR_KIND
from mailmerger_templates.schemas import TemplateVersionPage, TemplateVersionRead, TemplateVersionSummary

_templates = models.templates
_versions = models.template_versions


async def list_versions(
    session: AsyncSession, user_id: int, template_id: int, *, limit: int, after: int | None = None
) -> TemplateVersionPage:
    """A page of the template's versions, newest first, after version ``after`` when given."""
    current = await _current_version(session, user_id, template_id)
    query = select(_versions.c.version, _versions.c.name, _versions.c.subject, _versions.c.created_at).where(
        _versions.c.template_id == template_id
    )
    if after is not None:
        query = query.where(_versions.c.version < after)
    rows = (await session.execute(query.order_by(_versions.c.version.desc()).limit(limit + 1))).all()
    items = [
        TemplateVersionSummary(
            version=row.version,
            name=row.name,
            subject=row.subject,
            created_at=row.created_at,
            current=row.version == current,
        )
        for row in rows[:limit]
    ]
    next_cursor = encode_cursor(VERSIONS_CURSOR_KIND, items[-1].version) if len(rows) > limit else None
    return TemplateVersionPage(items=items, next_cursor=next_cursor)


async def get_version(
    session: AsyncSession, user_id: int, template_id: int, version: int
) -> TemplateVersionRead:
    """Version ``version`` of the template, as it was saved."""
    current = await _current_version(session, user_id, template_id)
    row = (
        await session.execute(
            select(_versions).where(_versions.c.template_id == template_id, _versions.c.version == version)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(
            f"template {template_id} has no version {version}; its versions are 1 to {current}"
            f" (list them with GET /v1/templates/{template_id}/versions)",
            extra={"field": "version"},
        )
    return TemplateVersionRead(
        id=template_id,
        version=row.version,
        current=row.version == current,
        name=row.name,
        description=row.description,
        subject=row.subject,
        html=row.html,
        text=row.text,
        variables=list(row.variables),
        required_fields=list(row.required_fields),
        created_at=row.created_at,
    )


async def _current_version(session: AsyncSession, user_id: int, template_id: int) -> int:
    current: int | None = (
        await session.execute(
            select(_templates.c.current_version).where(
                _templates.c.id == template_id,
                _templates.c.user_id == user_id,
                _templates.c.deleted_at.is_(None),
            )
        )
    ).scalar_one_or_none()
    if current is None:
        raise NotFound(f"template {template_id} does not exist; list yours with GET /v1/templates")
    return current
