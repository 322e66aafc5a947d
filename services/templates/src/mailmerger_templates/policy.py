"""What a template may contain, checked on its syntax tree before it is compiled.

A mail-merge template needs fields, filters, ``{% if %}``, ``{% for %}`` and ``{% set name = … %}``;
everything else Jinja offers (includes, macros, blocks, recursive loops, calls to arbitrary names) is
refused here, with a message per offending line, so it is never compiled, let alone run. The sandbox
enforces the same rules again at render time for what only the data can reveal.

Lists and dicts written in a template may hold only fixed values. That keeps every value a template
can build a tree no bigger than the template itself: a template cannot nest a list inside itself over
and over to make a small value print (or compare) as an enormous one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import cast

from jinja2 import nodes

from mailmerger_templates.cells import NOT_FIXED
from mailmerger_templates.errors import Part, SyntaxProblem
from mailmerger_templates.filters import CELL_FILTERS, PUBLIC_FILTERS, argument_problem

MAX_PROBLEMS_PER_PART = 20

_ALLOWED = frozenset(
    {
        nodes.Template, nodes.Output, nodes.TemplateData, nodes.If, nodes.For, nodes.Assign,
        nodes.Name, nodes.Const, nodes.Tuple, nodes.List, nodes.Dict, nodes.Pair,
        nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Filter, nodes.Test, nodes.Call, nodes.Keyword,
        nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos,
        nodes.CondExpr, nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv,
        nodes.Mod, nodes.Pow,
    }
)  # fmt: skip

_STANDALONE = "a template cannot use other templates; put everything it needs in it"
_PLAIN_TAGS = "templates may use {% if %}, {% for %} and {% set name = … %}"
_REFUSED_TAGS: dict[type[nodes.Node], str] = {
    nodes.Extends: f"{{% extends %}} is not supported: {_STANDALONE}",
    nodes.Include: f"{{% include %}} is not supported: {_STANDALONE}",
    nodes.Import: f"{{% import %}} is not supported: {_STANDALONE}",
    nodes.FromImport: f"{{% from … import %}} is not supported: {_STANDALONE}",
    nodes.Block: f"{{% block %}} is not supported: {_STANDALONE}",
    nodes.Macro: f"{{% macro %}} is not supported; {_PLAIN_TAGS}",
    nodes.CallBlock: f"{{% call %}} is not supported; {_PLAIN_TAGS}",
    nodes.AssignBlock: f"{{% set %}}…{{% endset %}} is not supported; {_PLAIN_TAGS}",
    nodes.FilterBlock: "{% filter %} is not supported; apply the filter to each value instead",
    nodes.With: f"{{% with %}} is not supported; {_PLAIN_TAGS}",
    nodes.ScopedEvalContextModifier: "{% autoescape %} is not supported; HTML escaping is always on",
}
_FUNCTIONS = frozenset({"range"})
_GUARDING_FILTERS = frozenset({"default", "d"})
_GUARDING_TESTS = frozenset({"defined", "undefined"})


def check(
    template: nodes.Template, part: Part, *, max_nesting: int, tests: Collection[str]
) -> list[SyntaxProblem]:
    """Every reason (up to MAX_PROBLEMS_PER_PART) this part may not be compiled; empty when it may."""
    problems: list[SyntaxProblem] = []
    too_deep_reported = False
    for node, depth in _walk(template):
        if depth > max_nesting and not too_deep_reported:
            too_deep_reported = True
            problems.append(SyntaxProblem(part, node.lineno, None, _too_deep(max_nesting)))
        message = _refusal(node, tests)
        if message is not None:
            problems.append(SyntaxProblem(part, node.lineno, None, message))
    return _deduplicated(problems)[:MAX_PROBLEMS_PER_PART]


def optional_fields(template: nodes.Template) -> set[str]:
    """Names the template guards itself with ``| default(…)`` or ``is defined``/``is undefined``.

    A row may lack them; the render still fails, naming the field, if some unguarded use needs it.
    """
    return {
        node.node.name
        for node, _ in _walk(template)
        if isinstance(node, nodes.Filter | nodes.Test)
        and isinstance(node.node, nodes.Name)
        and node.name in (_GUARDING_FILTERS if isinstance(node, nodes.Filter) else _GUARDING_TESTS)
    }


def tested_fields(template: nodes.Template) -> set[str]:
    """Names the template reads in the test of an ``{% if %}``/``{% elif %}`` or an inline ``… if … else …``.

    The template decides there what a blank value means (``{% if referrer %}…{% endif %}``), so a
    row may leave them blank; it must still have them.
    """
    tests = [node.test for node, _ in _walk(template) if isinstance(node, nodes.If | nodes.CondExpr)]
    return {
        node.name
        for test in tests
        for node, _ in _walk(test)
        if isinstance(node, nodes.Name) and node.ctx == "load"
    }


def _too_deep(max_nesting: int) -> str:
    return (
        f"the template nests more than {max_nesting} levels deep here; flatten its conditions or expressions"
    )


def _walk(root: nodes.Node) -> Iterator[tuple[nodes.Node, int]]:
    """Every node with its depth (``root`` is depth 0), iteratively: trees may be very deep."""
    stack: list[tuple[nodes.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1) for child in reversed(list(node.iter_child_nodes())))


def _refusal(node: nodes.Node, tests: Collection[str]) -> str | None:
    """Why this one node is not allowed, or None when it is."""
    kind = type(node)
    if kind not in _ALLOWED:
        return _REFUSED_TAGS.get(kind, f"{kind.__name__} is not supported in templates; {_PLAIN_TAGS}")
    if isinstance(node, nodes.Name):
        return _name_refusal(node.name)
    if isinstance(node, nodes.Getattr):
        return _attribute_refusal(node.attr)
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return _attribute_refusal(node.arg.value)
    if isinstance(node, nodes.Filter) and node.name not in PUBLIC_FILTERS:
        return f"unknown filter {node.name!r}; the filters are: {', '.join(sorted(PUBLIC_FILTERS))}"
    if isinstance(node, nodes.Filter) and node.name in CELL_FILTERS:
        return _cell_filter_refusal(node)
    if isinstance(node, nodes.Test) and node.name not in tests:
        return f"unknown test {node.name!r}; e.g. write `name is defined` or `count is even`"
    if (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.Name)
        and node.node.name not in _FUNCTIONS
    ):
        return f"{node.node.name}() is not a function templates can call; the only function is range()"
    if isinstance(node, nodes.For) and node.recursive:
        return "recursive loops are not supported; loop over each level of the list explicitly"
    if isinstance(node, nodes.List | nodes.Tuple | nodes.Dict) and not _is_fixed_collection(node):
        return "lists and dicts written in a template may only hold fixed text or numbers"
    return None


def _cell_filter_refusal(node: nodes.Filter) -> str | None:
    """Why the arguments of a ``number``/``date`` filter cannot work (checked now, not row by row)."""
    args = [_fixed_value(arg) for arg in node.args]
    if node.dyn_args is not None or node.dyn_kwargs is not None:
        args.append(NOT_FIXED)
    # Jinja types a filter's kwargs as Pairs; the parser makes them Keywords.
    keywords = cast(list[nodes.Keyword], node.kwargs)
    kwargs = {keyword.key: _fixed_value(keyword.value) for keyword in keywords}
    return argument_problem(node.name, args, kwargs)


def _fixed_value(node: nodes.Expr) -> object:
    if isinstance(node, nodes.Neg) and isinstance(node.node, nodes.Const) and _is_number(node.node.value):
        return -node.node.value
    return node.value if isinstance(node, nodes.Const) else NOT_FIXED


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _name_refusal(name: str) -> str | None:
    if name == "self":
        return "'self' is reserved by the template engine; give the field another name"
    if name.startswith("_"):
        return f"{name!r}: names starting with '_' are reserved; give the field another name"
    return None


def _attribute_refusal(attribute: str) -> str | None:
    if attribute.startswith("_"):
        return f"{attribute!r} is an internal attribute; templates may only read data fields"
    return None


def _is_fixed_collection(node: nodes.List | nodes.Tuple | nodes.Dict) -> bool:
    if isinstance(node, nodes.Tuple) and node.ctx != "load":
        return True  # a loop or {% set %} target such as `key, value`
    if isinstance(node, nodes.Dict):
        return all(_is_fixed(pair.key) and _is_fixed(pair.value) for pair in node.items)
    return all(_is_fixed(item) for item in node.items)


def _is_fixed(node: nodes.Expr) -> bool:
    if isinstance(node, nodes.Neg | nodes.Pos):
        node = node.node
    return isinstance(node, nodes.Const)


def _deduplicated(problems: list[SyntaxProblem]) -> list[SyntaxProblem]:
    return list(dict.fromkeys(problems))
