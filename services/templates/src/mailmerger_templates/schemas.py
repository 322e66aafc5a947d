"""The shapes of the v1 API: what clients send (strict: unknown fields are refused) and receive.

The subject and bodies have no length limit of their own: the engine's limit on the whole template
applies (answered 413), so one number governs them all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, UnsetType

from mailmerger_shared.web.deps import MAX_RESOURCE_ID
from mailmerger_templates.domain import TemplateContent

Name = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, description="How the template is listed and searched")
]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
TemplateId = Annotated[int, msgspec.Meta(ge=1, le=MAX_RESOURCE_ID)]


class Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies: a misspelt field is an error, not silently ignored."""


class TemplateCreate(Strict, frozen=True, kw_only=True):
    name: Name
    subject: str
    html: str
    text: str | None = None
    description: Description = ""

    def content(self) -> TemplateContent:
        return TemplateContent(
            name=self.name, description=self.description, subject=self.subject, html=self.html, text=self.text
        )


class TemplateUpdate(Strict, frozen=True, kw_only=True):
    """Fields to change; the others are copied from the current version. ``text: null`` removes it."""

    name: Name | UnsetType = UNSET
    subject: str | UnsetType = UNSET
    html: str | UnsetType = UNSET
    text: str | UnsetType | None = UNSET
    description: Description | UnsetType = UNSET

    def applied_to(self, current: TemplateContent) -> TemplateContent:
        changes = {
            name: value for name in self.__struct_fields__ if (value := getattr(self, name)) is not UNSET
        }
        return msgspec.structs.replace(current, **changes)


class TemplateRead(msgspec.Struct, frozen=True, kw_only=True):
    """A template as of its current version."""

    id: int
    version: int
    name: str
    description: str
    subject: str
    html: str
    text: str | None
    variables: list[str]
    required_fields: list[str]
    created_at: datetime
    updated_at: datetime


class TemplateSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    version: int
    name: str
    description: str
    updated_at: datetime


class TemplatePage(msgspec.Struct, frozen=True, kw_only=True):
    """Newest first; pass ``next_cursor`` as ``cursor`` for the next page (null on the last one)."""

    items: list[TemplateSummary]
    next_cursor: str | None


class TemplateVariables(msgspec.Struct, frozen=True, kw_only=True):
    """The fields a template reads; a row must hold the required ones (the others have defaults)."""

    template_id: int
    version: int
    variables: list[str]
    required_fields: list[str]


class SourceCheckRequest(Strict, frozen=True, kw_only=True):
    subject: str
    html: str
    text: str | None = None


class SourceCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A template that compiles; an invalid one is answered 422 with its problems."""

    valid: bool
    variables: list[str]
    required_fields: list[str]


class PreviewRequest(Strict, frozen=True, kw_only=True):
    fields: dict[str, Any]


class Preview(msgspec.Struct, frozen=True, kw_only=True):
    subject: str
    html: str
    text: str | None


class TemplateVersionSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One saved version of a template; ``current`` marks the one new mail is rendered with."""

    version: int
    name: str
    subject: str
    created_at: datetime
    current: bool


class TemplateVersionPage(msgspec.Struct, frozen=True, kw_only=True):
    """Newest version first; pass ``next_cursor`` as ``cursor`` for the next page (null on the last one)."""

    items: list[TemplateVersionSummary]
    next_cursor: str | None


class TemplateVersionRead(msgspec.Struct, frozen=True, kw_only=True):
    """One version of a template as it was saved; ``id`` is the template's."""

    id: int
    version: int
    current: bool
    name: str
    description: str
    subject: str
    html: str
    text: str | None
    variables: list[str]
    required_fields: list[str]
    created_at: datetime
