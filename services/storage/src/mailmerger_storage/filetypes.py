"""Which files are accepted, decided from their bytes *and* their name together.

A client's ``Content-Type`` is never trusted. The first bytes (magic numbers) name a family —
PDF, PNG, JPEG, GIF, WebP, a ZIP archive, an OLE compound file, or UTF-8 text — and the
extension must be one that family allows. Archives and compound files are then checked for the
part that makes them a Word/Excel/PowerPoint document, and text must stay valid UTF-8 to its
last byte. All of it works on the stream, in constant memory.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from dataclasses import dataclass

from mailmerger_storage.domain import extension_of
from mailmerger_storage.errors import UnsupportedFile


@dataclass(frozen=True)
class FileType:
    """An accepted kind of file: its extensions and the content type it is served with."""

    name: str  # what a person calls it, used in error messages
    extensions: tuple[str, ...]
    content_type: str
    # For containers (ZIP, OLE): a byte string only a file of this type contains.
    marker: bytes | None = None


PDF = FileType("a PDF document", ("pdf",), "application/pdf")
PNG = FileType("a PNG image", ("png",), "image/png")
JPEG = FileType("a JPEG image", ("jpg", "jpeg"), "image/jpeg")
GIF = FileType("a GIF image", ("gif",), "image/gif")
WEBP = FileType("a WebP image", ("webp",), "image/webp")
# Office Open XML files are ZIP archives; the main part's name appears in the archive's headers.
DOCX = FileType(
    "a Word document",
    ("docx",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    b"word/document.xml",
)
XLSX = FileType(
    "an Excel workbook",
    ("xlsx",),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    b"xl/workbook.xml",
)
PPTX = FileType(
    "a PowerPoint presentation",
    ("pptx",),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    b"ppt/presentation.xml",
)
# Legacy Office files are OLE compound files; their main stream is named in UTF-16LE.
DOC = FileType("a Word 97-2003 document", ("doc",), "application/msword", "WordDocument".encode("utf-16-le"))
XLS = FileType(
    "an Excel 97-2003 workbook", ("xls",), "application/vnd.ms-excel", "Workbook".encode("utf-16-le")
)
PPT = FileType(
    "a PowerPoint 97-2003 presentation",
    ("ppt",),
    "application/vnd.ms-powerpoint",
    "PowerPoint Document".encode("utf-16-le"),
)
TXT = FileType("a plain-text file", ("txt",), "text/plain; charset=utf-8")
CSV = FileType("a CSV file", ("csv",), "text/csv; charset=utf-8")

ALL_TYPES: frozenset[FileType] = frozenset(
    {PDF, PNG, JPEG, GIF, WEBP, DOCX, XLSX, PPTX, DOC, XLS, PPT, TXT, CSV}
)


@dataclass(frozen=True)
class Family:
    """What the first bytes say a file is; ``members`` are the types it may turn out to be."""

    name: str
    members: tuple[FileType, ...]


_ZIP = Family("a ZIP archive", (DOCX, XLSX, PPTX))
_OLE = Family("an OLE compound file", (DOC, XLS, PPT))
_TEXT = Family("text", (TXT, CSV))
_WEBP = Family(WEBP.name, (WEBP,))
_SIGNATURES: tuple[tuple[bytes, Family], ...] = (
    (b"%PDF-", Family(PDF.name, (PDF,))),
    (b"\x89PNG\r\n\x1a\n", Family(PNG.name, (PNG,))),
    (b"\xff\xd8\xff", Family(JPEG.name, (JPEG,))),
    (b"GIF87a", Family(GIF.name, (GIF,))),
    (b"GIF89a", Family(GIF.name, (GIF,))),
    (b"PK\x03\x04", _ZIP),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", _OLE),
)
SNIFF_BYTES = 16  # enough for every signature above, and for WebP's "RIFF....WEBP"


def _family_of(head: bytes) -> Family | None:
    for signature, family in _SIGNATURES:
        if head.startswith(signature):
            return family
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _WEBP
    return None


def allowed_extensions(types: Iterable[FileType]) -> str:
    return ", ".join(sorted(f".{extension}" for t in types for extension in t.extensions))


class ContentInspector:
    """Follows one file's bytes and decides its type, refusing it as soon as it can tell.

    ``feed`` every chunk in order, then ``finish``. The extension names the one type the file may
    be (each extension belongs to one type). ``UnsupportedFile`` is raised on construction for an
    extension outside the allow-list, by ``feed`` once the first ``SNIFF_BYTES`` contradict the
    extension, and by ``finish`` when a container lacks its marker or text turns out not to be
    UTF-8. Memory is constant: a small head, the tail needed to find a marker split across
    chunks, and a UTF-8 decoder's state.
    """

    def __init__(self, filename: str, allowed: frozenset[FileType]) -> None:
        extension = extension_of(filename)
        expected = next((t for t in allowed if extension in t.extensions), None)
        if expected is None:
            hint = f"files ending in .{extension} are" if extension else "a file without an extension is"
            raise UnsupportedFile(
                f"{hint} not accepted; upload one of: {allowed_extensions(allowed)}",
                extra={"filename": filename},
            )
        self._filename = filename
        self._allowed = allowed
        self._expected = expected
        self._family: Family | None = None
        self._head = b""
        self._text: codecs.IncrementalDecoder | None = None
        self._marker_seen = expected.marker is None
        self._tail = b""

    @property
    def expected(self) -> FileType:
        """The type the file must turn out to be (named by its extension)."""
        return self._expected

    def feed(self, chunk: bytes) -> None:
        if self._family is None:
            self._head += chunk
            if len(self._head) < SNIFF_BYTES:
                return
            self._decide()
            # Everything held back while deciding is scanned now, once.
            chunk, self._head = self._head, b""
        self._scan(chunk)

    def finish(self) -> FileType:
        """The file's type, once its last byte was fed."""
        if self._family is None:  # shorter than SNIFF_BYTES
            self._decide()
            self._scan(self._head)
        if self._text is not None:
            self._check_text(b"", final=True)
        if not self._marker_seen:
            family = self._family.name if self._family is not None else "unknown content"
            raise UnsupportedFile(
                f"{self._filename!r} is {family} but not {self._expected.name}; "
                f"save it again as .{self._expected.extensions[0]}",
                extra={"filename": self._filename},
            )
        return self._expected

    def _decide(self) -> None:
        head = self._head[:SNIFF_BYTES]
        family = _family_of(head)
        if family is None and b"\x00" not in head:
            family = _TEXT
        if family is None or self._expected not in family.members:
            found = family.name if family is not None else "not a file type we accept"
            raise UnsupportedFile(
                f"{self._filename!r} is named like {self._expected.name}, but its content is {found}; "
                f"upload one of: {allowed_extensions(self._allowed)}",
                extra={"filename": self._filename},
            )
        self._family = family
        if family is _TEXT:
            self._text = codecs.getincrementaldecoder("utf-8")()

    def _scan(self, chunk: bytes) -> None:
        if self._text is not None:
            self._check_text(chunk, final=False)
        marker = self._expected.marker
        if marker is not None and not self._marker_seen:
            window = self._tail + chunk
            self._marker_seen = marker in window
            # Keep just enough to find a marker split across two chunks.
            self._tail = window[-(len(marker) - 1) :]

    def _check_text(self, chunk: bytes, *, final: bool) -> None:
        assert self._text is not None
        try:
            valid = "\x00" not in self._text.decode(chunk, final=final)
        except UnicodeDecodeError:
            valid = False
        if not valid:
            raise UnsupportedFile(
                f"{self._filename!r} is named like text but is not UTF-8 text; save it as UTF-8 text",
                extra={"filename": self._filename},
            )
