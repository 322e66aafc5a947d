"""Reading a ``multipart/form-data`` body as it arrives, without holding a file in memory.

``read_form`` turns the request's byte stream into events: a text field arrives whole (it is
small, capped at ``MAX_FIELD_BYTES``), a file arrives as ``FileOpened`` followed by its data in
chunks as they come off the wire. Nothing is spooled to memory or disk; the caller
decides what to do with each chunk, and stops reading simply by no longer iterating.

Parsing is ``multipart``'s push parser (the one Litestar itself uses), fed chunk by chunk.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from multipart import (  # type: ignore[import-untyped]  # the package ships no type hints
    MultipartError,
    MultipartSegment,
    ParserLimitReached,
    PushMultipartParser,
    parse_options_header,
)

from mailmerger_storage.errors import MalformedForm, NotAForm

MAX_FIELD_BYTES = 1024
MAX_PARTS = 8  # a file and a few fields; anything more is not one of our forms


@dataclass(frozen=True)
class Field:
    name: str
    value: str


@dataclass(frozen=True)
class FileOpened:
    name: str
    filename: str


FormEvent = Field | FileOpened | bytes


def boundary_of(content_type: str | None) -> str:
    """The multipart boundary of a request's ``Content-Type``; refuses anything but form data."""
    media_type, options = parse_options_header(content_type or "")
    boundary = options.get("boundary")
    if media_type != "multipart/form-data" or not boundary:
        raise NotAForm("send the file as multipart/form-data (an HTML form or FormData)")
    return str(boundary)


async def read_form(chunks: AsyncIterator[bytes], boundary: str) -> AsyncGenerator[FormEvent, None]:
    """The events of one form; ``MalformedForm`` when the body is not valid multipart data."""
    name, charset = "", None
    field: bytearray | None = None  # the text field being read; None inside a file part
    try:
        with PushMultipartParser(boundary, max_segment_count=MAX_PARTS) as parser:
            async for chunk in chunks:
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        name = event.name or ""
                        if event.filename is not None:
                            field = None
                            yield FileOpened(name=name, filename=event.filename)
                        else:
                            field, charset = bytearray(), event.charset
                    elif event is None:  # end of the current part
                        if field is not None:
                            yield Field(name=name, value=_text(name, field, charset))
                        field = None
                    elif field is None:
                        yield event
                    else:
                        field += event
                        if len(field) > MAX_FIELD_BYTES:
                            raise MalformedForm(f"form field {name!r} is longer than {MAX_FIELD_BYTES} bytes")
                if parser.closed:
                    break
    except ParserLimitReached as exc:
        raise MalformedForm(f"the form has too many or too large parts: {exc}") from exc
    except MultipartError as exc:
        raise MalformedForm(f"the body is not valid multipart/form-data: {exc}") from exc


def _text(name: str, value: bytearray, charset: str | None) -> str:
    try:
        return value.decode(charset or "utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        raise MalformedForm(f"form field {name!r} is not text in its declared charset") from exc
