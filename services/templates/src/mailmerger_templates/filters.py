"""The filters a template may use: Jinja's text basics plus name helpers for greetings.

The list is deliberately short. Every filter here produces output at most a small constant factor
larger than its input, so no filter can be used to build an unbounded value; that is why Jinja's
``replace``, ``center``, ``indent``, ``join``, ``format`` and ``attr`` are absent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2.filters import FILTERS as JINJA_FILTERS


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
}
