"""Turning Jinja's syntax errors into problems with a column, so an editor can point at the mistake.

Jinja reports only the line of a syntax error. To find the column, a source that failed to parse is
parsed once more with every token's starting offset recorded: the parser stops at the offending
token (its ``stream.current``), and a tokenizer error stops right after the last token it produced.
This runs only for sources that failed, so it costs nothing on the normal path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from jinja2 import Environment
from jinja2.exceptions import TemplateSyntaxError
from jinja2.lexer import Token, TokenStream
from jinja2.parser import Parser

from mailmerger_templates.errors import Part, SyntaxProblem

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def syntax_problem(
    environment: Environment, source: str, part: Part, error: TemplateSyntaxError
) -> SyntaxProblem:
    """The problem ``error`` (raised parsing ``source``) describes, with its column when it can be found."""
    return SyntaxProblem(part, error.lineno, _error_column(environment, source, part), _advice(error.message))


def _advice(message: str | None) -> str:
    text = (message or "invalid syntax").rstrip(".")
    if "Jinja was looking for" in text:
        return f"{text}; check that every {{% if %}} and {{% for %}} has its {{% endif %}} or {{% endfor %}}"
    if "unknown tag" in text:
        return f"{text}; templates may use {{% if %}}, {{% for %}} and {{% set name = … %}}"
    return f"{text}; check the {{{{ … }}}} or {{% … %}} tag here"


class _OffsetTracker:
    """Tokens of one source, each mapped to the offset where it starts in the normalised source."""

    def __init__(self, environment: Environment, source: str, part: Part) -> None:
        self._environment = environment
        self._source = source
        self._part = part
        # Jinja normalises line breaks to "\n" before tokenizing; offsets refer to that text.
        self.text = "\n".join(_LINE_BREAK.split(source))
        self.starts: dict[int, int] = {}
        self._alive: list[Token] = []  # keeps tokens referenced so their ids stay unique
        self.last_start = 0
        self.end = 0
        self.tokenizer_failed = False

    def _raw(self) -> Iterator[tuple[int, str, str]]:
        try:
            for lineno, kind, value in self._environment.lexer.tokeniter(self._source, self._part):
                found = self.text.find(value, self.end) if value else -1
                self.last_start = found if found >= 0 else self.end
                self.end = self.last_start + len(value)
                yield lineno, kind, value
        except TemplateSyntaxError:
            self.tokenizer_failed = True
            raise

    def tokens(self) -> Iterator[Token]:
        # `wrap` pulls one raw token per token it yields (after skipping whitespace and comments),
        # so the raw token read last is the one the yielded token came from.
        for token in self._environment.lexer.wrap(self._raw(), self._part):
            self.starts[id(token)] = self.last_start
            self._alive.append(token)
            yield token

    def column(self, offset: int) -> int:
        return offset - (self.text.rfind("\n", 0, offset) + 1) + 1


def _error_column(environment: Environment, source: str, part: Part) -> int | None:
    tracker = _OffsetTracker(environment, source, part)
    parser: Parser | None = None
    try:
        stream = TokenStream(tracker.tokens(), part, None)
        parser = Parser(environment, source, name=part)
        parser.stream = stream
        parser.parse()
    except TemplateSyntaxError:
        if tracker.tokenizer_failed:
            return tracker.column(tracker.end)
        if parser is not None and id(parser.stream.current) in tracker.starts:
            return tracker.column(tracker.starts[id(parser.stream.current)])
    return None
