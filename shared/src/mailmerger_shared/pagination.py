"""Keyset pagination cursors, one format for every v1 list.

A page goes newest first and its ``next_cursor`` names the last row it showed; the next page
continues after that row. The cursor is opaque to clients (base64url of ``<kind>:<key>``) so
that a list can change its key later without a client parsing it, and each list names its own
``kind`` so a cursor of one list is refused by another instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import binascii

from mailmerger_shared.errors import Malformed

# The largest key a cursor may carry: a PostgreSQL bigint.
_MAX_KEY = 2**63 - 1


def encode_cursor(kind: str, key: int) -> str:
    """The cursor of the page after the row ``key`` of the list ``kind``."""
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, *, parameter: str = "cursor") -> int:
    """The row key ``cursor`` continues after; :class:`Malformed` for anything this API did not
    hand out for the list ``kind``."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        label, separator, value = text.partition(":")
        key = int(value) if separator and label == kind and value.isdigit() else -1
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = -1
    if not 0 <= key <= _MAX_KEY:
        raise Malformed(
            f"{parameter}: not a cursor this list returned; pass next_cursor back unchanged, "
            "or list again without it",
            extra={"field": parameter},
        )
    return key
