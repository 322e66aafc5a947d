"""The engine's verdicts as answers that say what to fix: problem responses and per-row errors."""

from __future__ import annotations

from collections.abc import Sequence

from mailmerger_shared.internal_api import RenderedRow
from mailmerger_shared.web.problems import Problem, Unprocessable
from mailmerger_templates.domain import legacy_key_mismatch
from mailmerger_templates.engine import TemplateEngine
from mailmerger_templates.rendering import (
    CompiledTemplate,
    MissingFields,
    RenderError,
    RenderFailed,
    RenderLimitExceeded,
    RenderLimits,
    RenderRefused,
    TemplateInvalid,
    TemplateSource,
)

# RenderedRow.error of each kind of render error.
_ROW_ERRORS: tuple[tuple[type[RenderError], str], ...] = (
    (MissingFields, "missing_fields"),
    (RenderRefused, "refused"),
    (RenderLimitExceeded, "limit_exceeded"),
    (RenderFailed, "render_failed"),
)


def check_size(limits: RenderLimits, source: TemplateSource) -> None:
    """Refuse a template over the engine's size limit (413) before any work is spent on it."""
    size = sum(len(text.encode()) for _, text in source.parts())
    if size > limits.max_source_bytes:
        raise Problem(
            f"the template is {size} bytes long (subject and bodies together, UTF-8); the limit is"
            f" {limits.max_source_bytes} bytes: shorten it",
            status=413,
            title="Content too large",
            extra={"size_bytes": size, "limit_bytes": limits.max_source_bytes},
        )


async def compile_or_explain(engine: TemplateEngine, source: TemplateSource) -> CompiledTemplate:
    """Compile ``source``, or answer 413 (too large) or 422 listing every problem with its place."""
    check_size(engine.limits, source)
    try:
        return await engine.compile(source)
    except TemplateInvalid as invalid:
        raise invalid_template(invalid) from None


def invalid_template(invalid: TemplateInvalid, context: str = "the template cannot be used") -> Unprocessable:
    """422 listing every problem with its part, line and column (when known) and what to change."""
    return Unprocessable(
        f"{context}: " + "; ".join(str(problem) for problem in invalid.problems),
        title="Invalid template",
        extra={"problems": list(invalid.problems)},
    )


def check_legacy_keys(t_key: str, variables: Sequence[str]) -> None:
    mismatch = legacy_key_mismatch(t_key, variables)
    if mismatch is not None:
        raise Unprocessable(mismatch, extra={"placeholders": sorted(variables)})


def render_problem(error: RenderError) -> Unprocessable:
    """A row that cannot be rendered, as a 422 naming the kind, the place and the missing fields."""
    extra: dict[str, object] = {"error": _kind(error), "part": error.part, "line": error.line}
    if isinstance(error, MissingFields):
        extra["missing"] = list(error.names)
    return Unprocessable(str(error), title="The row cannot be rendered", extra=extra)


def row_error(error: RenderError) -> RenderedRow:
    missing = list(error.names) if isinstance(error, MissingFields) else []
    return RenderedRow(ok=False, error=_kind(error), detail=str(error), missing=missing)


def _kind(error: RenderError) -> str:
    return next((kind for error_type, kind in _ROW_ERRORS if isinstance(error, error_type)), "render_failed")
