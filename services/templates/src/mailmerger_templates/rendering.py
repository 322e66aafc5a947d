"""The rendering engine: compile a user's template once, render it for many rows of fields.

Pure code — no HTTP, no database. A template has a subject, an HTML body and an optional plain-text
body, written with ``{{ field }}`` placeholders (the legacy client's ``{{key_name}}`` included), simple
``{% if %}``/``{% for %}`` and a few filters. Compiling checks and compiles all parts (the costly
step: cache the result); rendering fills them in for one row or for a campaign's batch of rows.

Rules a caller can rely on:

* fields are plain data — text, numbers, booleans, None, and lists or dicts of them — as decoded
  from JSON or a spreadsheet; the sandbox lets templates read them, never change them;
* values are HTML-escaped in the HTML body only; the subject and text body get them verbatim;
* a value is always inserted literally: ``{{ … }}`` inside a value is never evaluated;
* a row must contain every field the template uses, except fields the template guards itself with
  ``| default(…)`` or ``is defined``;
* a blank value (``None``, or text of nothing but whitespace: an empty spreadsheet cell) counts as
  missing, so "Hello Bob at " never goes out for an empty company; except where the template shows
  it expects blanks. A guard treats a blank as absent (``| default(…)`` gives the default, ``is
  defined`` is false; any unguarded use then fails the row, naming the field); a field the
  template tests in an ``{% if %}`` may be blank, and is then empty (false, printing nothing).
  ``None`` prints as nothing;
* the subject is one line: every line break (as ``str.splitlines`` knows them), with the spaces and
  tabs around it, becomes a single space, then the subject is stripped. Values come from spreadsheets
  where stray line breaks are common; folding them keeps the mail sendable and rules out header
  injection without failing the row;
* no render exceeds its :class:`RenderLimits`; breaking one raises :class:`RenderLimitExceeded`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple, cast

import msgspec
from jinja2 import Template, meta
from jinja2.exceptions import SecurityError, TemplateSyntaxError

from mailmerger_templates import policy
from mailmerger_templates.errors import (
    MissingFields,
    Part,
    RenderError,
    RenderFailed,
    RenderLimitExceeded,
    RenderRefused,
    SyntaxProblem,
    TemplateError,
    TemplateInvalid,
)
from mailmerger_templates.limits import RenderBudget, RenderLimits
from mailmerger_templates.sandbox import (
    BudgetedContext,
    FieldUndefined,
    MailMergeSandbox,
    UndefinedField,
    meter,
)
from mailmerger_templates.syntax import syntax_problem

__all__ = [
    "CompiledTemplate",
    "MissingFields",
    "RenderError",
    "RenderFailed",
    "RenderLimitExceeded",
    "RenderLimits",
    "RenderRefused",
    "Rendered",
    "Renderer",
    "RowError",
    "SyntaxProblem",
    "TemplateError",
    "TemplateInvalid",
    "TemplateSource",
]

_LINE_BREAKS = re.compile(r"[ \t]*[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]+[ \t]*")
_TOO_DEEP = "the template is nested too deeply; flatten its conditions or expressions"


class TemplateSource(msgspec.Struct, frozen=True):
    """What a user writes: a subject, an HTML body and, optionally, a plain-text body."""

    subject: str
    html: str
    text: str | None = None

    def parts(self) -> list[tuple[Part, str]]:
        """The parts present, in the order subject, html, text."""
        present: list[tuple[Part, str]] = [("subject", self.subject), ("html", self.html)]
        if self.text is not None:
            present.append(("text", self.text))
        return present


class Rendered(msgspec.Struct, frozen=True):
    """One row's mail. ``subject`` is a single stripped line; ``text`` is None when the template has none."""

    subject: str
    html: str
    text: str | None


class RowError(msgspec.Struct, frozen=True):
    """Why the row at ``index`` (0-based, in the batch given) could not be rendered."""

    index: int
    error: RenderError


class CompiledTemplate(msgspec.Struct, frozen=True):
    """A checked, compiled template: immutable, cacheable, renderable from many threads at once.

    ``variables`` are the top-level field names the template reads (loop and ``set`` variables
    excluded), sorted; ``required_fields`` are those a row must contain; ``guarded_fields``
    those it guards (``| default``, ``is defined``), and ``may_be_blank`` those plus the ones it
    tests (``{% if %}``): a blank value is theirs to handle. Render it only with the
    :class:`Renderer` that compiled it.
    """

    source: TemplateSource
    variables: tuple[str, ...]
    required_fields: tuple[str, ...]
    subject_template: Template
    html_template: Template
    text_template: Template | None
    guarded_fields: frozenset[str]
    may_be_blank: frozenset[str]


class _CompiledPart(NamedTuple):
    template: Template
    variables: set[str]
    optional: set[str]
    tested: set[str]


class _BlankField(FieldUndefined):
    """The blank value of a guarded field: absent for ``| default`` and ``is defined``, false for
    an ``{% if %}``, and missing (the row fails, naming it) wherever its value is used."""

    __slots__ = ()

    # StrictUndefined fails here; a blank value is simply false, so ``{% if %}`` can test it.
    def __bool__(self) -> bool:  # type: ignore[override]
        return False


class Renderer:
    """Compiles and renders templates within ``limits``; holds the one sandboxed environment they share.

    Thread-safe after construction; one per process is enough.
    """

    def __init__(self, limits: RenderLimits | None = None) -> None:
        self.limits = limits or RenderLimits()
        self._environment = MailMergeSandbox(self.limits)

    def compile(self, source: TemplateSource) -> CompiledTemplate:
        """Check and compile every part; raise :class:`TemplateInvalid` listing all problems found."""
        problems = self._size_problems(source)
        compiled: dict[Part, _CompiledPart] = {}
        if not problems:
            for part, text in source.parts():
                try:
                    compiled[part] = self._compile_part(part, text)
                except TemplateInvalid as invalid:
                    problems.extend(invalid.problems)
        if problems:
            raise TemplateInvalid(problems)
        variables = sorted(set().union(*(each.variables for each in compiled.values())))
        optional = set().union(*(each.optional for each in compiled.values()))
        tested = set().union(*(each.tested for each in compiled.values()))
        text_part = compiled.get("text")
        return CompiledTemplate(
            source=source,
            variables=tuple(variables),
            required_fields=tuple(name for name in variables if name not in optional),
            subject_template=compiled["subject"].template,
            html_template=compiled["html"].template,
            text_template=text_part.template if text_part else None,
            guarded_fields=frozenset(optional & set(variables)),
            may_be_blank=frozenset((optional | tested) & set(variables)),
        )

    def validate(self, source: TemplateSource) -> list[SyntaxProblem]:
        """Every problem that keeps ``source`` from compiling; empty when it is valid."""
        try:
            self.compile(source)
        except TemplateInvalid as invalid:
            return list(invalid.problems)
        return []

    def render(self, compiled: CompiledTemplate, fields: Mapping[str, object]) -> Rendered:
        """Render one row; raise a :class:`RenderError` subclass saying why it cannot be rendered."""
        self._check_compiled_here(compiled)
        return self._render_row(compiled, fields)

    def render_batch(
        self, compiled: CompiledTemplate, rows: Sequence[Mapping[str, object]]
    ) -> list[Rendered | RowError]:
        """Render every row, in order; a row that fails yields a :class:`RowError` in its place."""
        self._check_compiled_here(compiled)
        results: list[Rendered | RowError] = []
        for index, fields in enumerate(rows):
            try:
                results.append(self._render_row(compiled, fields))
            except RenderError as error:
                results.append(RowError(index, error))
        return results

    def _size_problems(self, source: TemplateSource) -> list[SyntaxProblem]:
        size = sum(len(text.encode()) for _, text in source.parts())
        if size <= self.limits.max_source_bytes:
            return []
        message = f"the template is {size} bytes long; the limit is {self.limits.max_source_bytes} bytes"
        return [SyntaxProblem(None, None, None, message)]

    def _compile_part(self, part: Part, text: str) -> _CompiledPart:
        environment = self._environment
        try:
            tree = environment.parse(text, name=part)
        except TemplateSyntaxError as error:
            raise TemplateInvalid([syntax_problem(environment, text, part, error)]) from None
        except RecursionError:
            raise TemplateInvalid([SyntaxProblem(part, None, None, _TOO_DEEP)]) from None
        problems = policy.check(tree, part, max_nesting=self.limits.max_nesting, tests=environment.tests)
        if problems:
            raise TemplateInvalid(problems)
        try:
            variables = meta.find_undeclared_variables(tree)
            optional = policy.optional_fields(tree)
            tested = policy.tested_fields(tree)
            meter(tree, environment)
            code = environment.compile(tree, name=part)
        except TemplateSyntaxError as error:  # the compiler's own checks, e.g. assigning to `loop`
            message = error.message or "invalid template"
            raise TemplateInvalid([SyntaxProblem(part, error.lineno, None, message)]) from None
        except (SyntaxError, RecursionError):  # Python's limits on nested blocks and brackets
            raise TemplateInvalid([SyntaxProblem(part, None, None, _TOO_DEEP)]) from None
        template = environment.template_class.from_code(environment, code, environment.globals)
        return _CompiledPart(template, variables, optional, tested)

    def _check_compiled_here(self, compiled: CompiledTemplate) -> None:
        if compiled.html_template.environment is not self._environment:
            raise ValueError("this template was compiled by another Renderer; render it with that one")

    def _render_row(self, compiled: CompiledTemplate, fields: Mapping[str, object]) -> Rendered:
        missing = [
            name
            for name in compiled.required_fields
            if name not in fields or (_is_blank(fields[name]) and name not in compiled.may_be_blank)
        ]
        if missing:
            raise MissingFields(missing)
        if any(_is_blank(value) for value in fields.values()):
            fields = {name: _blank_as(compiled, name, value) for name, value in fields.items()}
        limits = self.limits
        budget = RenderBudget(limits)
        raw_subject = _render_part(
            compiled.subject_template, "subject", fields, budget, limits.max_body_chars
        )
        subject = _LINE_BREAKS.sub(" ", raw_subject).strip()
        if len(subject) > limits.max_subject_chars:
            error = RenderLimitExceeded(
                f"the subject is {len(subject)} characters long; the limit is {limits.max_subject_chars}"
            )
            error.locate("subject", None)
            raise error
        html = _render_part(compiled.html_template, "html", fields, budget, limits.max_body_chars)
        text_template = compiled.text_template
        text = (
            None
            if text_template is None
            else _render_part(text_template, "text", fields, budget, limits.max_body_chars)
        )
        return Rendered(subject, html, text)


def _is_blank(value: object) -> bool:
    """An empty cell: nothing, or text of nothing but whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())


def _blank_as(compiled: CompiledTemplate, name: object, value: object) -> object:
    """What the template sees of a field's value: a blank one is absent to the field's guards, and
    empty (false, printing nothing) to its tests."""
    if not _is_blank(value):
        return value
    if isinstance(name, str) and name in compiled.guarded_fields:
        return _BlankField(name=name)
    return None if value is None else ""


def _render_part(
    template: Template, part: Part, fields: Mapping[str, object], budget: RenderBudget, max_chars: int
) -> str:
    """Render one part, stopping as soon as its output passes ``max_chars`` or the budget runs out."""
    chunks: list[str] = []
    size = 0
    try:
        context = cast(BudgetedContext, template.new_context(dict(fields)))
        context.budget = budget
        # Calling the compiled render function directly skips Template.render's traceback
        # rewriting; errors become RenderErrors below instead.
        for chunk in template.root_render_func(context):
            size += len(chunk)
            if size > max_chars:
                raise RenderLimitExceeded(
                    f"the {part} would be longer than {max_chars} characters; shorten the template"
                    " or the values, or loop over fewer items"
                )
            budget.check_clock()
            chunks.append(chunk)
    except Exception as error:  # whatever the template's code raised: this row fails, no other
        raise _as_render_error(error, part, template) from None
    return "".join(chunks)


def _as_render_error(error: Exception, part: Part, template: Template) -> RenderError:
    """The RenderError ``error`` amounts to, located at the part and template line it came from."""
    result: RenderError
    if isinstance(error, RenderError):
        result = error
    elif isinstance(error, UndefinedField):
        result = MissingFields([error.field], None if error.top_level else str(error))
    elif isinstance(error, SecurityError):
        result = RenderRefused(str(error))
    else:
        result = RenderFailed(f"{type(error).__name__}: {error}")
    result.locate(part, _template_line(error, template))
    return result


def _template_line(error: BaseException, template: Template) -> int | None:
    """The source line of the innermost frame of ``template`` in ``error``'s traceback, if any."""
    line = None
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__jinja_template__") is template:
            line = template.get_corresponding_lineno(traceback.tb_lineno)
        traceback = traceback.tb_next
    return line
