"""Rules about attachments: kinds, filenames and download headers (why an upload is refused: ``errors``).

Pure functions and value types; no I/O. What a file *is* (sniffing its bytes) lives in
``filetypes``.
"""

from __future__ import annotations

import enum
import unicodedata
from datetime import datetime
from urllib.parse import quote

import msgspec


class Kind(enum.StrEnum):
    RESUME = "resume"
    COVER_LETTER = "cover_letter"
    OTHER = "other"


# Kinds of which a user has one *current* attachment, the one ``include_resume`` & co. use.
DESIGNATABLE = frozenset({Kind.RESUME, Kind.COVER_LETTER})


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    """An attachment as the service knows it; each API chooses what of it to show."""

    id: int
    user_id: int
    kind: Kind
    filename: str
    content_type: str
    size: int
    sha256: str
    object_key: str
    designated: bool
    created_at: datetime


def megabytes(size: int) -> str:
    """A size as people read it in an error message (``10 MB``, ``5.5 MB``)."""
    return f"{size / 1024 / 1024:.1f}".removesuffix(".0") + " MB"


# --- filenames --------------------------------------------------------------------------------

FALLBACK_FILENAME = "attachment"
MAX_FILENAME_CHARS = 200
MAX_FILENAME_BYTES = 255  # what most file systems accept, and the column's width
MAX_EXTENSION_CHARS = 16
# Control, format (e.g. right-to-left overrides that disguise ``exe.pdf``), surrogate and
# line/paragraph separator characters never belong in a name a person reads.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def sanitise_filename(raw: str | None) -> str:
    """A safe display name for an uploaded file.

    Invariants of the result: NFC-normalised; no path separators or directory parts; no control
    or other invisible characters (so no CR/LF); no leading/trailing spaces or dots (so never
    ``.`` or ``..``); at most ``MAX_FILENAME_CHARS`` characters and ``MAX_FILENAME_BYTES`` UTF-8
    bytes, shortened in the stem so the extension survives; never empty. The name is only ever
    shown and sent back in ``Content-Disposition``: object keys never derive from it.
    """
    name = unicodedata.normalize("NFC", raw or "")
    # Keep the last path component whichever separator the client's OS uses.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Whitespace of any kind (CR, LF, tab, line separators) becomes one space; other invisible
    # characters go.
    name = "".join(ch for ch in name if ch.isspace() or unicodedata.category(ch) not in _UNPRINTABLE)
    name = " ".join(name.split()).strip(" .")
    return _shorten(name) or FALLBACK_FILENAME


def _shorten(name: str) -> str:
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > MAX_EXTENSION_CHARS:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""

    def fits(candidate: str) -> bool:
        return len(candidate) <= MAX_FILENAME_CHARS and len(candidate.encode()) <= MAX_FILENAME_BYTES

    if fits(stem + suffix):
        return stem + suffix
    while stem and not fits(stem + suffix):
        stem = stem[:-1]
    stem = stem.rstrip(" .")
    return stem + suffix if stem else ""


def extension_of(filename: str) -> str:
    """The lower-cased extension without its dot, or ``""``."""
    stem, dot, extension = filename.rpartition(".")
    return extension.lower() if dot and stem else ""


# RFC 5987 attr-char, minus the ALPHA / DIGIT that ``quote`` keeps anyway.
_ATTR_CHAR_PUNCTUATION = "!#$&+-.^_`|~"


def content_disposition(filename: str) -> str:
    """``Content-Disposition: attachment`` naming ``filename`` (RFC 6266 with RFC 5987 encoding).

    ``filename*`` carries the exact UTF-8 name; ``filename`` is an ASCII approximation for old
    clients, with quotes and backslashes replaced so it cannot break out of its quoted string.
    """
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = "".join(ch if ch.isprintable() and ch not in '"\\' else "_" for ch in fallback).strip()
    if not fallback or fallback.startswith("."):
        fallback = FALLBACK_FILENAME + (f".{extension_of(filename)}" if extension_of(filename) else "")
    encoded = quote(filename, safe=_ATTR_CHAR_PUNCTUATION)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
