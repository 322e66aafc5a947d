"""The ``number`` and ``date`` filters: read a spreadsheet cell, write it the way a locale does.

CSV cells are text, so both filters parse what they are given (JSON numbers are taken as they
are), then format it with Babel's CLDR data. ``locale`` is a CLDR identifier such as ``en_US``,
``de_DE`` or ``fr_FR`` (``de-DE`` is accepted too); the default is ``en_US``.

``{{ amount | number }}``, ``{{ amount | number(2) }}``, ``{{ amount | number(2, locale="de_DE") }}``
    Reads a cell like ``1234.5``, ``1,234.50``, ``1.234,50``, ``1 234,5`` or ``-12``. The rule: the
    decimal sign is the last ``.`` or ``,`` of the cell, except in a cell written wholly in
    thousands groups with one separator — 1 to 3 digits not starting with 0, then groups of exactly
    three digits each after the same ``.`` or ``,`` (``1,234``, ``1.234.567``) — which is a whole
    number. Spaces, no-break spaces and apostrophes group thousands too; whatever groups must do
    so consistently (one separator, groups of three). So ``1,234`` and ``1.234`` are 1234, while
    ``0.125``, ``1,5`` and ``1234.567`` have decimals. At most 18 digits before the decimal sign.
    ``decimals`` (0 to 10) rounds half up to that many decimals and always shows them; without it
    the decimals the cell has are shown.

``{{ signed_on | date }}``, ``{{ signed_on | date("long") }}``,
``{{ signed_on | date("d MMM yyyy", locale="fr_FR") }}``
    Reads an ISO 8601 date or date-time (``2026-12-07``, ``2026-12-07T10:00``, ``2026-12-07 10:00:00``);
    other forms (``07/12/2026``) are ambiguous and refused. A time zone in the cell is ignored: the
    time is shown as written. ``format`` is a style (``short``, ``medium`` — the default —,
    ``long``, ``full``: the date only) or a CLDR pattern of at most 64 characters (``d MMM yyyy``,
    ``EEEE d MMMM 'at' HH:mm``); time zone fields are not available.

Arguments must be fixed values; :func:`argument_problem` checks them when the template is saved.
A cell that cannot be read fails its row with :class:`CellNotReadable`, naming the column (the
sandbox passes it as the hidden ``_cell`` keyword), the value and the filter. ``None`` prints as
nothing. Outputs are bounded: at most 18 + 10 digits with their signs, or a pattern of 64 fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from functools import lru_cache
from typing import Final

from babel import Locale
from babel.core import UnknownLocaleError
from babel.dates import format_date, format_datetime, tokenize_pattern
from babel.numbers import NumberPattern, format_decimal

from mailmerger_templates.errors import CellNotReadable, RenderFailed

CELL_FILTERS: Final = frozenset({"number", "date"})
CELL_KEYWORD: Final = "_cell"
DEFAULT_LOCALE: Final = "en_US"
MAX_DECIMALS: Final = 10
MAX_INTEGER_DIGITS: Final = 18
MAX_PATTERN_CHARS: Final = 64
DATE_STYLES: Final = ("short", "medium", "long", "full")

_PARAMETERS: Mapping[str, tuple[str, str]] = {"number": ("decimals", "locale"), "date": ("format", "locale")}
_EXAMPLES: Mapping[str, str] = {
    "number": "{{ amount | number(2, locale='de_DE') }}",
    "date": "{{ signed_on | date('d MMM yyyy', locale='fr_FR') }}",
}
# Enough precision for every number the filters accept, rounded to every number of decimals.
_EXACT: Final = Context(prec=MAX_INTEGER_DIGITS + MAX_DECIMALS + 2)
_GROUPING = " \u00a0\u202f\u2009'"
_SEPARATOR = re.compile(rf"[.,{_GROUPING}]")
_NUMBER = re.compile(rf"[+\-\u2212]?\d+(?:[.,{_GROUPING}]\d+)*")
_DATE_FIELDS = frozenset("GyYuUQqMLwWdDFgEecabBhHKkmsSA")
_ZONE_FIELDS = frozenset("zZvVxXO")
_QUOTED = re.compile(r"'[^']*'?")
_NUMBER_ADVICE = "write it like 1234.5, 1,234.50 or 1.234,50, with at most 18 digits before the decimals"
_DATE_ADVICE = "write dates as 2026-12-07 (ISO 8601), optionally with a time: 2026-12-07T10:00"


class NotFixed:
    """Stands for an argument that is not a fixed value in the template."""


NOT_FIXED: Final = NotFixed()


# --- the filters -------------------------------------------------------------------------------


def number(
    value: object, decimals: int | None = None, locale: str | None = None, *, _cell: str | None = None
) -> str:
    """``value`` read as a number (see the module docstring), written as ``locale`` writes numbers."""
    if value is None:
        return ""
    amount = read_number(value)
    if amount is None:
        raise CellNotReadable(_cell, _text(value), "number", "a number", _NUMBER_ADVICE)
    where = _locale(locale)
    with localcontext(_EXACT):  # Babel computes in the current context; the default's 28 digits are too few
        if decimals is None:
            return format_decimal(amount, locale=where, decimal_quantization=False)
        rounded = amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
        formatted: str = _fixed_pattern(where, decimals).apply(rounded, where)
    return formatted


def date(
    value: object, format: str = "medium", locale: str | None = None, *, _cell: str | None = None
) -> str:
    """``value`` read as an ISO 8601 date or date-time, written in a style or CLDR pattern of ``locale``."""
    if value is None:
        return ""
    moment = read_date(value)
    if moment is None:
        raise CellNotReadable(_cell, _text(value), "date", "a date", _DATE_ADVICE)
    where = _locale(locale)
    if format in DATE_STYLES:
        return format_date(moment.date(), format, locale=where)
    return format_datetime(moment, format, locale=where)


# --- reading cells -----------------------------------------------------------------------------


def read_number(value: object) -> Decimal | None:
    """The number a cell (or a JSON number) holds, or None when it holds none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return amount if amount.is_finite() and abs(amount) < 10**MAX_INTEGER_DIGITS else None
    text = _text(value).strip()
    if len(text) > 64 or not _NUMBER.fullmatch(text):
        return None
    negative = text[0] in "-\u2212"
    body = text.lstrip("+-\u2212")
    runs = _SEPARATOR.split(body)
    separators = _SEPARATOR.findall(body)
    fraction = ""
    if separators and separators[-1] in ".," and not _whole_in_groups(runs, separators):
        fraction = runs.pop()
        separators.pop()
    if separators and not _grouped(runs, separators):
        return None
    integer = "".join(runs)
    if len(integer.lstrip("0")) > MAX_INTEGER_DIGITS:
        return None
    amount = Decimal(f"{integer}.{fraction}" if fraction else integer)
    return -amount if negative else amount


def read_date(value: object) -> datetime | None:
    """The date-time an ISO 8601 cell holds (midnight for a date), without its time zone; else None."""
    text = _text(value).strip()
    if len(text) > 40:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return None


def _whole_in_groups(runs: Sequence[str], separators: Sequence[str]) -> bool:
    return (
        separators[-1] in ".,"
        and len(set(separators)) == 1
        and not runs[0].startswith("0")
        and _grouped(runs, separators)
    )


def _grouped(runs: Sequence[str], separators: Sequence[str]) -> bool:
    """Thousands groups: one separator, 1 to 3 digits, then groups of exactly three."""
    return len(set(separators)) == 1 and 1 <= len(runs[0]) <= 3 and all(len(run) == 3 for run in runs[1:])


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


# --- locales and patterns ----------------------------------------------------------------------


@lru_cache(maxsize=256)
def _locale(identifier: str | None) -> Locale:
    problem = locale_problem(identifier)
    if problem is not None:  # checked when the template was saved; a safety net only
        raise RenderFailed(problem)
    return Locale.parse((identifier or DEFAULT_LOCALE).replace("-", "_"))


@lru_cache(maxsize=256)
def _fixed_pattern(where: Locale, decimals: int) -> NumberPattern:
    """The locale's own number pattern (its grouping), showing exactly ``decimals`` decimals."""
    base = where.decimal_formats[None]
    return NumberPattern(
        base.pattern,
        base.prefix,
        base.suffix,
        base.grouping,
        base.int_prec,
        (decimals, decimals),
        base.exp_prec,
        base.exp_plus,
        base.number_pattern,
    )


def _loaded(identifier: str) -> None:
    """Parse the locale and load its CLDR data now (Babel keeps it), so that the first row
    rendered with it does not spend its time budget reading data files."""
    where = Locale.parse(identifier.replace("-", "_"))
    _ = where.number_symbols, where.date_formats


def locale_problem(identifier: object) -> str | None:
    """Why ``identifier`` is not a locale the filters can use, or None; loads its data when it is."""
    if identifier is None:
        _loaded(DEFAULT_LOCALE)
        return None
    if not isinstance(identifier, str) or not 2 <= len(identifier) <= 20:
        return f"locale must be text such as 'en_US', not {identifier!r}"
    try:
        _loaded(identifier)
    except (UnknownLocaleError, ValueError):
        return f"locale {identifier!r} is unknown; write a locale such as 'en_US', 'de_DE' or 'fr_FR'"
    return None


def date_format_problem(format: object) -> str | None:
    """Why ``format`` is neither a date style nor a usable CLDR pattern, or None."""
    advice = f"write a style ({', '.join(DATE_STYLES)}) or a CLDR pattern such as 'd MMM yyyy'"
    if not isinstance(format, str) or not format.strip():
        return f"the format must be text; {advice}"
    if format in DATE_STYLES:
        return None
    if len(format) > MAX_PATTERN_CHARS:
        return f"the pattern is longer than {MAX_PATTERN_CHARS} characters; {advice}"
    try:
        tokenize_pattern(format)
    except (ValueError, KeyError) as error:
        return f"{format!r} is not a date pattern ({error}); {advice}"
    for letter in _QUOTED.sub("", format):
        if letter in _ZONE_FIELDS:
            return f"{letter!r} (a time zone) is not available: cells have no time zone; {advice}"
        if letter.isascii() and letter.isalpha() and letter not in _DATE_FIELDS:
            return f"{letter!r} is not a date field of {format!r} (quote text: 'at'); {advice}"
    return None


def argument_problem(name: str, args: Sequence[object], kwargs: Mapping[str, object]) -> str | None:
    """Why the arguments written for cell filter ``name`` cannot work, or None when they can.

    Values the template computes are :data:`NOT_FIXED`: they are refused, so that every argument is
    checked here, when the template is saved, rather than row by row.
    """
    parameters = _PARAMETERS[name]
    usage = f"filter {name} takes {' and '.join(parameters)}, e.g. {_EXAMPLES[name]}"
    if len(args) > len(parameters) or any(key not in parameters for key in kwargs):
        return usage
    given = dict(zip(parameters, args, strict=False))
    if any(key in given for key in kwargs):
        return usage
    given.update(kwargs)
    if any(value is NOT_FIXED for value in given.values()):
        return f"the arguments of filter {name} must be fixed values; {usage}"
    problem = None
    if "decimals" in given:
        decimals = given["decimals"]
        if decimals is not None and (
            isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= MAX_DECIMALS
        ):
            problem = f"decimals must be a whole number from 0 to {MAX_DECIMALS}, not {decimals!r}"
    if problem is None and "format" in given:
        problem = date_format_problem(given["format"])
    if problem is None:
        problem = locale_problem(given.get("locale"))
    return None if problem is None else f"filter {name}: {problem}"
