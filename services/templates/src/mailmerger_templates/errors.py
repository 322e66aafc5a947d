"""What can go wrong with a template: the engine's errors, and what the use cases report for them.

The engine raises ``TemplateError``s: problems found when a template is compiled, errors when a row
is rendered. Compile problems point at the part (subject, html, text) and the line; render errors
point at the part and line that failed when they can (a row missing fields fails before any part
runs, so it has neither). The use cases report them as the kit's domain errors (the last section),
which the web kit answers at the edge. Every message says what is wrong and, where there is one,
what to change.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from mailmerger_shared.errors import Invalid, TooLarge

Part = Literal["subject", "html", "text"]


class SyntaxProblem(msgspec.Struct, frozen=True):
    """One reason a template cannot be compiled.

    ``part`` is None when the problem concerns the whole template (its total size). ``line`` and
    ``column`` are 1-based; ``column`` is known only for errors the parser meets at a token.
    """

    part: Part | None
    line: int | None
    column: int | None
    message: str

    def __str__(self) -> str:
        return f"{_location(self.part, self.line, self.column)}{self.message}"


class TemplateError(Exception):
    """Base of every error the rendering engine raises on purpose."""


class TemplateInvalid(TemplateError):
    """The template cannot be compiled; ``problems`` lists every problem found, in source order."""

    def __init__(self, problems: list[SyntaxProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("the template is invalid:\n" + "\n".join(f"  - {p}" for p in self.problems))


class RenderError(TemplateError):
    """A row could not be rendered. ``reason`` says why; ``part`` and ``line`` say where, when known.

    The renderer fills ``part`` and ``line`` in as the error leaves the part being rendered; an error
    keeps the first location it is given.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.part: Part | None = None
        self.line: int | None = None

    def locate(self, part: Part, line: int | None) -> None:
        """Record where the error happened, unless a location is already known."""
        if self.part is None:
            self.part, self.line = part, line

    def __str__(self) -> str:
        return f"{_location(self.part, self.line, None)}{self.reason}"


class MissingFields(RenderError):
    """The row lacks fields the template needs; ``names`` lists all of them, sorted."""

    def __init__(self, names: list[str], detail: str | None = None) -> None:
        self.names = tuple(names)
        reason = f"missing fields: {', '.join(self.names)}"
        if detail:
            reason += f" ({detail})"
        super().__init__(
            reason + "; add them to the row (a blank value counts as missing), or write e.g."
            " {{ name | default('…') }} for optional ones"
        )


class RenderRefused(RenderError):
    """The template tried something the sandbox forbids (private attributes, unsafe calls)."""


class RenderLimitExceeded(RenderError):
    """Rendering would exceed a limit: time, loop iterations, range size, or output/value size."""


class RenderFailed(RenderError):
    """The template's own logic failed for this row, e.g. dividing by zero or adding text to a number."""


class CellNotReadable(RenderFailed):
    """A cell a ``number`` or ``date`` filter reads does not hold a number or a date.

    ``column`` is the field the filter was applied to (None for a computed value).
    """

    def __init__(self, column: str | None, value: str, filter_name: str, expected: str, advice: str) -> None:
        self.column = column
        self.value = value
        self.filter_name = filter_name
        shown = value if len(value) <= 40 else value[:39] + "…"
        subject = f"the {column!r} cell" if column is not None else "the value"
        super().__init__(f"{subject} {shown!r} is not {expected} (filter {filter_name}); {advice}")


# --- what the use cases report -----------------------------------------------------------------


class TemplateTooLarge(TooLarge):
    """The template's parts together are longer than the engine takes; refused before any work."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the template is {size} bytes long (subject and bodies together, UTF-8); the limit is"
            f" {limit} bytes: shorten it",
            extra={"size_bytes": size, "limit_bytes": limit},
        )


class InvalidTemplate(Invalid):
    """The template cannot be used: every problem, with its part, line and column when known."""

    def __init__(self, invalid: TemplateInvalid, context: str = "the template cannot be used") -> None:
        super().__init__(
            f"{context}: " + "; ".join(str(problem) for problem in invalid.problems),
            title="Invalid template",
            extra={"problems": list(invalid.problems)},
        )


class RowNotRendered(Invalid):
    """A row cannot be rendered: the kind of error, its place and the missing fields."""

    def __init__(self, error: RenderError) -> None:
        extra: dict[str, object] = {"error": row_error_kind(error), "part": error.part, "line": error.line}
        if isinstance(error, MissingFields):
            extra["missing"] = list(error.names)
        super().__init__(str(error), title="The row cannot be rendered", extra=extra)


# The kind of each render error, as rows and answers name it.
_ROW_ERRORS: tuple[tuple[type[RenderError], str], ...] = (
    (MissingFields, "missing_fields"),
    (RenderRefused, "refused"),
    (RenderLimitExceeded, "limit_exceeded"),
    (RenderFailed, "render_failed"),
)


def row_error_kind(error: RenderError) -> str:
    return next((kind for error_type, kind in _ROW_ERRORS if isinstance(error, error_type)), "render_failed")


def _location(part: Part | None, line: int | None, column: int | None) -> str:
    where: list[str] = [part] if part else []
    if line is not None:
        where.append(f"line {line}")
    if column is not None:
        where.append(f"column {column}")
    return f"{', '.join(where)}: " if where else ""
