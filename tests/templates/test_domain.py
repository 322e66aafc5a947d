"""Rules without I/O: the list's pagination cursors and the legacy key list."""

from __future__ import annotations

import base64

import pytest

from mailmerger_shared.errors import Malformed
from mailmerger_shared.pagination import decode_cursor, encode_cursor
from mailmerger_templates.domain import CURSOR_KIND, legacy_key_mismatch, parse_legacy_keys


def _opaque(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_round_trips() -> None:
    """A templates cursor decodes to the id it was made from."""
    assert decode_cursor(CURSOR_KIND, encode_cursor(CURSOR_KIND, 123_456)) == 123_456


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!",
        _opaque("t123"),  # the format this service used before the kit's
        _opaque("attachments:123"),
        _opaque("templates:-1"),
        _opaque("templates:" + "9" * 20),
        _opaque("templates:\u00b9"),
    ],
)
def test_a_cursor_not_made_for_this_list_is_refused(cursor: str) -> None:
    """Garbage, other lists' cursors, negative, overlong and non-ASCII digits are all Malformed."""
    with pytest.raises(Malformed) as refused:
        decode_cursor(CURSOR_KIND, cursor)
    assert refused.value.extra == {"field": "cursor"}


def test_legacy_keys_are_trimmed_and_blanks_dropped() -> None:
    """The legacy client's "a, b,,c " means a, b and c."""
    assert parse_legacy_keys(" a, b,,c ") == ["a", "b", "c"]


def test_matching_keys_in_any_order_are_accepted() -> None:
    """t_key lists the body's placeholders; order and spacing do not matter."""
    assert legacy_key_mismatch("name , company", ["company", "name"]) is None


def test_a_mismatch_names_what_is_missing_and_what_is_extra() -> None:
    """The complaint says which placeholders t_key lacks and which it lists needlessly."""
    assert legacy_key_mismatch("a,c", ["a", "b"]) == (
        "t_key must list exactly the placeholders t_body uses; missing from t_key: b; not used in t_body: c"
    )
