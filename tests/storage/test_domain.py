"""The rules without I/O: filename sanitising, download headers and content inspection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailmerger_shared.header_text import header_text_problem
from mailmerger_storage.domain import content_disposition, sanitise_filename
from mailmerger_storage.errors import UnsupportedFile
from mailmerger_storage.filetypes import ALL_TYPES, DOCX, TXT, ContentInspector
from tests.storage.forms import office_zip


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\cv.pdf", "cv.pdf"),
        ("cv\r\nX-Injected: 1.pdf", "cv X-Injected: 1.pdf"),
        ("tab\there.pdf", "tab here.pdf"),
        ("  spaced   out .pdf  ", "spaced out .pdf"),
        ("..", "attachment"),
        ("", "attachment"),
        (None, "attachment"),
        ("\x00\x1b[31m.pdf", "[31m.pdf"),
        ("evil\u202egpj.exe", "evilgpj.exe"),
        ("Re\u0301sume\u0301.pdf", "Résumé.pdf"),  # decomposed accents are NFC-composed
    ],
)
def test_sanitised_filenames_are_safe_to_show_and_send_back(raw: str | None, safe: str) -> None:
    """Path parts, control and invisible characters go; the result is NFC and never empty."""
    assert sanitise_filename(raw) == safe


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(
    st.text(max_size=300)
    | st.text(alphabet="\r\n\x00\x1b\x7f\x85\x9f\u2028\u2029\u202e=?:_ab.", max_size=300)
)
def test_a_sanitised_filename_can_always_be_a_header_parameter(raw: str) -> None:
    """Whatever the client sends, the stored name passes the shared header-text rule the sender
    applies (no line break, control or separator) and is at most 200 characters: a file name is
    user text that reaches Content-Disposition, so upload cleans it rather than refuse it."""
    name = sanitise_filename(raw)
    assert header_text_problem(name) is None
    assert 0 < len(name) <= 200


def test_long_filename_is_shortened_keeping_its_extension() -> None:
    """A name past the limits loses characters from its stem, never its extension."""
    name = sanitise_filename("é" * 300 + ".docx")
    assert name.endswith(".docx")
    assert len(name) <= 200
    assert len(name.encode()) <= 255


def test_content_disposition_has_an_ascii_fallback_and_the_exact_utf8_name() -> None:
    """RFC 6266/5987: quoted ASCII filename plus filename* with the percent-encoded UTF-8 name."""
    assert (
        content_disposition("履歴書.pdf")
        == "attachment; filename=\"attachment.pdf\"; filename*=UTF-8''%E5%B1%A5%E6%AD%B4%E6%9B%B8.pdf"
    )
    assert (
        content_disposition('a"b\\c.pdf')
        == "attachment; filename=\"a_b_c.pdf\"; filename*=UTF-8''a%22b%5Cc.pdf"
    )


def _inspect(filename: str, data: bytes, chunk: int) -> str:
    inspector = ContentInspector(filename, ALL_TYPES)
    for start in range(0, len(data), chunk):
        inspector.feed(data[start : start + chunk])
    return inspector.finish().name


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_inspection_does_not_depend_on_how_the_bytes_are_chunked(chunk: int) -> None:
    """Magic bytes, a container's marker and UTF-8 sequences may be split across chunks."""
    assert _inspect("cv.docx", office_zip("word/document.xml"), chunk) == DOCX.name
    assert _inspect("notes.txt", "naïve café ✓\n".encode() * 50, chunk) == TXT.name


def test_text_cut_inside_a_utf8_sequence_is_refused() -> None:
    """A text file ending in half a character is not UTF-8 text."""
    with pytest.raises(UnsupportedFile):
        _inspect("notes.txt", "café".encode()[:-1], 4096)
