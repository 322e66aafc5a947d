"""The Jinja environment templates run in: Jinja's immutable sandbox, narrowed and put on a budget.

On top of the sandbox's refusal of private attributes and of mutating methods:

* only a short allowlist of methods may be called (no ``str.format``, ``center``, ``replace``…),
  because the others can build unbounded values or reach object internals;
* ``+``, ``*``, ``**`` and ``%`` are intercepted: text and numbers only, results capped in size,
  and no ``%``-formatting of text;
* every ``for`` loop is rewritten to draw each iteration from the row's :class:`RenderBudget`, and
  every ``~`` concatenation to respect the value-size cap (see :func:`meter`);
* every call the template makes checks the budget's clock;
* the only global is a ``range()`` capped at ``RenderLimits.max_range`` numbers;
* undefined values fail loudly (:class:`FieldUndefined`) and ``None`` prints as nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, NoReturn, TypeVar, cast

from jinja2 import nodes, pass_context, pass_eval_context
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, LoopContext, StrictUndefined, Undefined, markup_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from jinja2.visitor import NodeTransformer

from mailmerger_templates.cells import CELL_KEYWORD
from mailmerger_templates.errors import RenderLimitExceeded, RenderRefused
from mailmerger_templates.filters import CELL_FILTERS, PUBLIC_FILTERS
from mailmerger_templates.limits import MAX_INTEGER_BITS, RenderBudget, RenderLimits

METERED_FILTER: Final = "_metered"
CONCAT_FILTER: Final = "_concat_within_limit"
_U = TypeVar("_U", bound=Undefined)

# Methods a template may call, by the type of the value they belong to. Each returns something no
# bigger than its input (case changes may grow text by a small constant factor at most).
_TEXT_METHODS = frozenset(
    {
        "lower", "upper", "title", "capitalize", "casefold", "swapcase",
        "strip", "lstrip", "rstrip", "removeprefix", "removesuffix",
        "split", "rsplit", "splitlines", "partition", "rpartition",
        "startswith", "endswith", "find", "rfind", "index", "rindex", "count",
        "isalpha", "isalnum", "isdigit", "isdecimal", "isnumeric", "isspace",
        "islower", "isupper", "istitle",
    }
)  # fmt: skip
_CALLABLE_METHODS: tuple[tuple[type, frozenset[str]], ...] = (
    (str, _TEXT_METHODS),
    (Mapping, frozenset({"get", "keys", "values", "items"})),
    (Sequence, frozenset({"index", "count"})),
    (LoopContext, frozenset({"cycle", "changed"})),
)


class BudgetedContext(Context):
    """A render context that carries the budget of the row being rendered."""

    budget: RenderBudget


class UndefinedField(UndefinedError):
    """A value the template used is absent from the row; ``field`` names it."""

    def __init__(self, message: str, field: str, *, top_level: bool) -> None:
        super().__init__(message)
        self.field = field
        self.top_level = top_level


def _failing_everywhere(cls: type[_U]) -> type[_U]:
    """Route every failing operation of an Undefined subclass through its own failure method.

    Jinja binds the operator methods of (Strict)Undefined to the base class's failure function when
    it defines the classes, so a subclass overriding that function would otherwise be bypassed.
    """
    base_failure = Undefined._fail_with_undefined_error
    for name, member in (vars(Undefined) | vars(StrictUndefined)).items():
        if member is base_failure and name != "_fail_with_undefined_error":
            setattr(cls, name, cls._fail_with_undefined_error)
    return cls


@_failing_everywhere
class FieldUndefined(StrictUndefined):
    """Jinja's StrictUndefined, failing with :class:`UndefinedField` so the render can name the field.

    Undefined values made by the sandbox for unsafe attributes keep failing with SecurityError.
    """

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        if self._undefined_exception is not UndefinedError:
            super()._fail_with_undefined_error()
        name = self._undefined_name
        raise UndefinedField(
            self._undefined_message,
            name if isinstance(name, str) else f"[{name!r}]",
            top_level=self._undefined_obj is missing,
        )


def _blank_none(value: object) -> object:
    """Print an absent (None) value as nothing rather than as the word "None"."""
    return "" if value is None else value


def _escapes_html(template_name: str | None) -> bool:
    return template_name == "html"


class MailMergeSandbox(ImmutableSandboxedEnvironment):
    """The single environment a :class:`Renderer` compiles and renders with; see the module docstring."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    context_class = BudgetedContext

    def __init__(self, limits: RenderLimits) -> None:
        super().__init__(
            undefined=FieldUndefined,
            autoescape=_escapes_html,
            finalize=_blank_none,
            auto_reload=False,
        )
        self.limits = limits
        self.filters = {
            **PUBLIC_FILTERS,
            METERED_FILTER: _metered,
            CONCAT_FILTER: self._concat_within_limit,
        }
        self.globals = {"range": self._capped_range}

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        return not callable(value) or _may_call(obj, attr)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        if attribute.startswith("_"):
            reason = f"{attribute!r} is an internal attribute; templates may only read data fields"
        else:
            reason = (
                f"calling {attribute!r} on a {type(obj).__name__} value is not allowed in templates;"
                " templates read fields and change them with filters such as | upper"
            )
        return self.undefined(reason, name=attribute, obj=obj, exc=SecurityError)

    def wrap_str_format(self, value: Any) -> None:
        # Jinja would hand out a sandboxed str.format; here format/format_map are simply not
        # callable (they are missing from the allowlist), so there is nothing to wrap.
        return None

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        cast(BudgetedContext, context).budget.check_clock()
        return super().call(context, obj, *args, **kwargs)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if isinstance(left, str) or isinstance(right, str):
            self._check_text_operation(operator, left, right)
        elif _is_number(left) and _is_number(right):
            if operator == "**":
                _check_power(left, right)
        elif not (isinstance(left, Undefined) or isinstance(right, Undefined)):
            raise RenderRefused(
                f"{operator!r} works on numbers and text only, not on"
                f" {type(left).__name__} and {type(right).__name__}"
            )
        result = self.binop_table[operator](left, right)
        if isinstance(result, int) and result.bit_length() > MAX_INTEGER_BITS:
            raise _number_too_large()
        return result

    def _check_text_operation(self, operator: str, left: Any, right: Any) -> None:
        if operator == "%" and isinstance(left, str):
            raise RenderRefused(
                "'%' formatting of text is not available in templates; write values with {{ name }}"
            )
        size = 0
        if operator == "+" and isinstance(left, str) and isinstance(right, str):
            size = len(left) + len(right)
        elif operator == "*" and isinstance(left, str) and isinstance(right, int):
            size = len(left) * right
        elif operator == "*" and isinstance(left, int) and isinstance(right, str):
            size = left * len(right)
        self._check_value_size(size)

    def _check_value_size(self, size: int) -> None:
        if size > self.limits.max_body_chars:
            raise RenderLimitExceeded(
                f"the template builds a text of {size} characters; values are limited to"
                f" {self.limits.max_body_chars} characters"
            )

    def _capped_range(self, *args: int) -> range:
        numbers = range(*args)
        # Slicing, unlike len(), never overflows, whatever the range's size.
        if numbers[self.limits.max_range :]:
            raise RenderLimitExceeded(
                f"range() may produce at most {self.limits.max_range} numbers; use a smaller range"
            )
        return numbers

    @pass_eval_context
    def _concat_within_limit(self, eval_ctx: EvalContext, operands: tuple[Any, ...]) -> str:
        """``~``: the operands as text, joined — refused before joining if the result would be too large."""
        texts = [operand if isinstance(operand, str) else str(operand) for operand in operands]
        self._check_value_size(sum(map(len, texts)))
        return markup_join(texts) if eval_ctx.autoescape else "".join(texts)


@pass_context
def _metered(context: BudgetedContext, items: Iterable[Any]) -> Iterator[Any]:
    return context.budget.metered(items)


class _Metering(NodeTransformer):
    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, METERED_FILTER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Filter(self, node: nodes.Filter) -> nodes.Node:
        """Tell ``number`` and ``date`` which column they read, so an unreadable cell names it."""
        self.generic_visit(node)
        if node.name in CELL_FILTERS:
            column = _column(node.node)
            keyword = nodes.Keyword(CELL_KEYWORD, nodes.Const(column), lineno=node.lineno)
            node.kwargs.append(cast(nodes.Pair, keyword))  # Jinja types kwargs as Pairs; they are Keywords
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        operands = nodes.Tuple(node.nodes, "load", lineno=node.lineno)
        return nodes.Filter(operands, CONCAT_FILTER, [], [], None, None, lineno=node.lineno)


def _column(node: nodes.Node | None) -> str | None:
    """The field an expression reads (``amount``, ``row.amount``), looking through other filters."""
    while isinstance(node, nodes.Filter):
        node = node.node
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        parent = _column(node.node)
        return None if parent is None else f"{parent}.{node.attr}"
    return None


def meter(template: nodes.Template, environment: MailMergeSandbox) -> None:
    """Rewrite a checked template in place: loops draw on the budget, ``~`` respects the value cap."""
    _Metering().visit(template)
    template.set_environment(environment)


def _may_call(obj: object, method: str) -> bool:
    for owner, methods in _CALLABLE_METHODS:
        if isinstance(obj, owner):
            return method in methods
    return False


def _is_number(value: object) -> bool:
    return isinstance(value, int | float)


def _check_power(base: int | float, exponent: int | float) -> None:
    """Refuse integer powers whose result would be too large, before computing them."""
    # The result has at least exponent * log2(|base|) bits.
    if (
        isinstance(base, int)
        and isinstance(exponent, int)
        and exponent > 0
        and abs(base) > 1
        and exponent * math.log2(abs(base)) > MAX_INTEGER_BITS
    ):
        raise _number_too_large()


def _number_too_large() -> RenderLimitExceeded:
    return RenderLimitExceeded(
        f"the template computes a number larger than {MAX_INTEGER_BITS} bits; use smaller numbers"
    )
