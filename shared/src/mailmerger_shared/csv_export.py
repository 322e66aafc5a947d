"""CSV for people to open in a spreadsheet: data is never run as a formula (CSV injection).

Every export writes its lines with ``csv_line``. A text cell that begins with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is what Excel, LibreOffice and Google Sheets read as a formula
(``=HYPERLINK(...)``, ``@SUM(...)``, ``-2+3+cmd|...``); recipients' data (an address or a field of
a rejected row, quoted back in a problem's detail) can begin that way. As OWASP's CSV-injection
guidance says, such a cell gets a leading single quote, which every spreadsheet shows as text,
and is quoted; quotes inside a cell are doubled (RFC 4180). Numbers are written as numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTES = frozenset(',"\r\n')


def spreadsheet_text(value: str) -> str:
    """``value`` as a spreadsheet shows it as text: with a leading ``'`` if it could start a formula."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def csv_cell(value: object) -> str:
    """One cell: ``None`` empty, numbers as they are, text made safe and quoted when it must be."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS) or not _NEEDS_QUOTES.isdisjoint(text):
        return '"' + spreadsheet_text(text).replace('"', '""') + '"'
    return text


def csv_line(cells: Iterable[object]) -> bytes:
    """One CSV record (``\\r\\n``-terminated, as RFC 4180 and Python's ``csv`` write), UTF-8."""
    return (",".join(csv_cell(cell) for cell in cells) + "\r\n").encode()


__all__ = ["FORMULA_TRIGGERS", "csv_cell", "csv_line", "spreadsheet_text"]
