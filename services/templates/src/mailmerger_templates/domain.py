"""Rules and value types of templates, without I/O."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from mailmerger_shared.errors import Invalid
from mailmerger_templates.errors import TemplateTooLarge
from mailmerger_templates.limits import RenderLimits
from mailmerger_templates.rendering import TemplateSource

# The kind of the v1 list's pagination cursors (mailmerger_shared.pagination).
CURSOR_KIND = "templates"
# ... and of a template's list of versions (keyed by version number).
VERSIONS_CURSOR_KIND = "template-versions"

# (template_id, version): what queued mail refers to, and the key of a compiled version.
VersionKey = tuple[int, int]

# The largest ids and version numbers the columns hold (bigint, integer): anything larger names
# nothing, and must be refused before it reaches the database driver.
MAX_ID = 2**63 - 1
MAX_VERSION = 2**31 - 1


class TemplateContent(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one version of a template holds; a version is this, frozen, plus its number."""

    name: str
    description: str
    subject: str
    html: str
    text: str | None

    @property
    def source(self) -> TemplateSource:
        return TemplateSource(subject=self.subject, html=self.html, text=self.text)


def check_size(limits: RenderLimits, source: TemplateSource) -> None:
    """Refuse a template over the engine's size limit before any work is spent on it."""
    size = sum(len(text.encode()) for _, text in source.parts())
    if size > limits.max_source_bytes:
        raise TemplateTooLarge(size, limits.max_source_bytes)


def legacy_name(template_id: int) -> str:
    """Name (and subject) of a template made by the legacy client, which sends only a body.

    The legacy client types each email's subject itself and never reads a template's; the name
    makes such templates tell apart in the v1 API, where both can be changed.
    """
    return f"Template {template_id}"


def parse_legacy_keys(t_key: str) -> list[str]:
    """The names in a legacy comma-separated key list (``"name, company"``), blanks dropped."""
    return [key.strip() for key in t_key.split(",") if key.strip()]


def legacy_keys(variables: Iterable[str]) -> str:
    """A template's fields as the legacy client's ``t_key``: comma-separated, sorted."""
    return ",".join(variables)


def legacy_key_mismatch(t_key: str, used: Iterable[str]) -> str | None:
    """Why ``t_key`` does not list exactly the placeholders the body uses, or None when it does."""
    declared, needed = set(parse_legacy_keys(t_key)), set(used)
    if declared == needed:
        return None
    complaints = []
    if needed - declared:
        complaints.append(f"missing from t_key: {', '.join(sorted(needed - declared))}")
    if declared - needed:
        complaints.append(f"not used in t_body: {', '.join(sorted(declared - needed))}")
    return "t_key must list exactly the placeholders t_body uses; " + "; ".join(complaints)


def check_legacy_keys(t_key: str, variables: Iterable[str]) -> None:
    """Refuse a legacy ``t_key`` that does not list exactly the placeholders the body uses."""
    mismatch = legacy_key_mismatch(t_key, variables)
    if mismatch is not None:
        raise Invalid(mismatch, extra={"placeholders": sorted(variables)})
