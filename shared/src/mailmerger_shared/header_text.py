"""Which text may become part of a mail header: one rule for every service that lets text get there.

A header field ends at a line break, and mail software does not agree on what a line break is: CR,
LF, NEL (U+0085), the Unicode line and paragraph separators (U+2028, U+2029) and the other
controls are each one to someone. So text bound for a header (a subject, a display name, a file
name) may contain none of them: no C0 control but TAB (which is ordinary folding whitespace), no
DEL, no C1 control, no U+2028/U+2029, and no unpaired surrogate (it cannot be encoded as UTF-8).

The queue refuses such text at its API (422), storage and auth clean what users cannot retype
(file names, Google profile names), and the sender refuses it again before writing a header: its
headers are written by its own code, whose decoded form is exactly the text checked here.
"""

from __future__ import annotations

import re

FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

_NAMES = {
    "\r": "a line break (CR)",
    "\n": "a line break (LF)",
    "\x0b": "a line break (vertical tab)",
    "\x0c": "a line break (form feed)",
    "\x85": "a line break (NEL, U+0085)",
    "\u2028": "a line separator (U+2028)",
    "\u2029": "a paragraph separator (U+2029)",
    "\x00": "a NUL character",
}


def header_text_problem(value: str) -> str | None:
    """What makes ``value`` unfit for a header (``"contains a line separator (U+2028) at
    character 6"``), or None when it is fit."""
    found = FORBIDDEN.search(value)
    if found is None:
        return None
    return f"contains {describe(found.group())} at character {found.start() + 1}"


def describe(character: str) -> str:
    """A forbidden character as people read it in an error message."""
    if character in _NAMES:
        return _NAMES[character]
    if "\ud800" <= character <= "\udfff":
        return f"an unpaired surrogate (U+{ord(character):04X}), which is not text"
    return f"a control character (U+{ord(character):04X})"


def clean_header_text(value: str, *, max_length: int) -> str:
    """``value`` made fit for a header, for text its author cannot be asked to fix (a Google
    profile name): every run of whitespace and line breaks becomes one space, the other
    forbidden characters go, the ends are trimmed, and at most ``max_length`` characters stay."""
    spaced = " ".join(FORBIDDEN.sub(_space_or_nothing, value).split())
    return spaced[:max_length].rstrip()


def _space_or_nothing(found: re.Match[str]) -> str:
    # Line breaks separate words; other controls are noise inside one.
    return " " if found.group() in _NAMES and found.group() != "\x00" else ""
