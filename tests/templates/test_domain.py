"""Rules without I/O: pagination cursors and the legacy key list."""

from __future__ import annotations

import pytest

from mailmerger_templates.domain import (
    InvalidCursor,
    decode_cursor,
    encode_cursor,
    legacy_key_mismatch,
    parse_legacy_keys,
)


def test_a_cursor_round_trips() -> None:
    """decode_cursor returns the id encode_cursor was given."""
    assert decode_cursor(encode_cursor(123_456)) == 123_456


@pytest.mark.parametrize("cursor", ["", "!!", "eDEyMw", "dC0x", "dDEyMzQ1Njc4OTAxMjM0NTY3ODkw", "dMK5"])
def test_a_cursor_not_made_here_is_refused(cursor: str) -> None:
    """Garbage, other prefixes, negative, overlong and non-ASCII digits are all InvalidCursor."""
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)


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
