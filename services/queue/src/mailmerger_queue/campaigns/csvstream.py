"""CSV records from a byte stream, without holding more than a chunk of it.

The body arrives in chunks; chunks are decoded incrementally (UTF-8, an optional BOM dropped),
cut into lines, and lines are handed to the ``csv`` module only once they make up whole records:
a quoted field may span lines, and an odd number of quote characters so far means the record is
still open (RFC 4180 escapes a quote by doubling it, which keeps the count even).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import AsyncIterator, Iterable

from mailmerger_queue.errors import Invalid, RecipientListTooLarge


async def csv_records(chunks: AsyncIterator[bytes], *, max_bytes: int) -> AsyncIterator[list[str]]:
    """Each record of the CSV text in ``chunks``, in order; blank lines are skipped."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    carry = ""  # text after the last line break seen
    pending: list[str] = []  # lines of a record whose quotes are still open
    quotes = 0
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if received > max_bytes:
            raise RecipientListTooLarge(
                f"the recipient list is larger than {max_bytes} bytes; split it into campaigns"
            )
        text = carry + _decode(decoder, chunk, final=False)
        lines = text.split("\n")
        carry = lines.pop()
        complete: list[str] = []
        for line in lines:
            pending.append(line + "\n")
            quotes += line.count('"')
            if quotes % 2 == 0:
                complete.extend(pending)
                pending.clear()
                quotes = 0
        for record in _parse(complete):
            yield record
    rest = carry + _decode(decoder, b"", final=True)
    for record in _parse([*pending, rest] if rest else pending):
        yield record


def _decode(decoder: codecs.IncrementalDecoder, chunk: bytes, *, final: bool) -> str:
    try:
        return decoder.decode(chunk, final=final)
    except UnicodeDecodeError as exc:
        raise Invalid("the recipient list is not UTF-8 text; export the CSV as UTF-8") from exc


def _parse(lines: Iterable[str]) -> Iterable[list[str]]:
    try:
        for record in csv.reader(lines, strict=True):
            if any(cell.strip() for cell in record):
                yield record
    except csv.Error as exc:
        raise Invalid(f"the recipient list is not valid CSV: {exc}") from exc
