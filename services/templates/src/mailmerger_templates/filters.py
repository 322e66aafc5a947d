"""The filters a template may use: Jinja's text basics, name helpers for greetings, and numbers and
dates read from spreadsheet cells and written the way a locale writes them.

The list is deliberately short. Every filter here produces output at most a small constant factor
larger than its input (or of a fixed size), so no filter can be used to build an unbounded value;
that is why Jinja's ``replace``, ``center``, ``indent``, ``join``, ``format`` and ``attr`` are absent.

``number`` and ``date`` (see :mod:`mailmerger_templates.cells`) take only fixed arguments, checked
when the template is saved (:func:`argument_problem`); a cell they cannot read fails its row with a
:class:`~mailmerger_templates.errors.CellNotReadable` naming the column, the value and the filter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2.filters import FILTERS as JINJA_FILTERS

from mailmerger_templates.cells import CELL_FILTERS, argument_problem, date, number

__all__ = ["CELL_FILTERS", "PUBLIC_FILTERS", "argument_problem", "first_name", "last_name"]


def first_name(value: object) -> str:
    """The first word of a full name ("Ada Lovelace" → "Ada"); empty for a blank or absent name."""
    words = _words(value)
    return words[0] if words else ""


def last_name(value: object) -> str:
    """The last word of a name with at least two words ("Ada King Lovelace" → "Lovelace"), else empty."""
    words = _words(value)
    return words[-1] if len(words) > 1 else ""


def _words(value: object) -> list[str]:
    return [] if value is None else str(value).split()


_FROM_JINJA = ("default", "d", "title", "lower", "upper", "capitalize", "trim", "length")

PUBLIC_FILTERS: Mapping[str, Callable[..., Any]] = {
    **{name: JINJA_FILTERS[name] for name in _FROM_JINJA},
    "first_name": first_name,
    "last_name": last_name,
    "number": number,
    "date": date,
}
