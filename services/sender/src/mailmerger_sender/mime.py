"""Building the RFC 5322 message of a ``SendEmail``: headers, bodies, attachments. Pure.

Invariants:
- Header injection is impossible by construction: every header is written by ``headers``, which
  holds each text to the shared header-text rule and writes it plain or encoded, never through the
  ``email`` package's header parser (see its docstring).
- ``build_message`` raises ``InvalidMessage`` and nothing else: whatever else goes wrong while
  building is turned into one, so a message that cannot be built fails permanently with a reason
  instead of crashing its consumer again and again (and ending "unconfirmed" though never sent).
- Everything is checked before the first boundary is drawn (the tests replay the randomness).
- ``Message-ID`` is the command's deterministic ``rfc_message_id``, the same on every attempt.
- On the plain domain (header values of printable ASCII on one line, simple addresses, plain file
  names) the bytes are exactly what the ``email`` package writes with ``policy.SMTP``; bodies
  always are, with its own choice of transfer encoding (``_text_body``). The tests keep the
  package as the oracle of both.
"""

from __future__ import annotations

import binascii
import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import quoprimime, utils

from mailmerger_sender.headers import (
    InvalidMessage,
    address_field,
    attachment_disposition,
    list_unsubscribe_fields,
    mailbox,
    message_id,
    message_id_field,
    parameter_line,
    unstructured,
)
from mailmerger_sender.html_text import html_to_text
from mailmerger_shared.contracts import SendEmail

__all__ = ["AttachmentBody", "Content", "InvalidMessage", "build_message", "minimum_size"]

_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_BASE64_LINE = 76
_MAX_LINE = 78  # policy.SMTP's max_line_length
_QP_SNIFF_LINES = 10  # the stdlib picks quoted-printable or base64 from a body's first 10 lines
_BASE64_CHUNK = _MAX_LINE // 4 * 3  # bytes per base64 line of a text body (57: 76 characters)
_MAX_DETAIL = 300


class Content:
    """The verified bytes of an attachment, shared by every message that attaches them.

    Their base64 body is computed on first use and kept: a campaign attaches the same resume to
    thousands of messages.
    """

    __slots__ = ("_base64", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._base64: bytes | None = None

    @property
    def footprint(self) -> int:
        """Bytes held once the base64 body exists (76-character lines + CRLF: x 4/3 x 78/76)."""
        return len(self.data) + 4 * math.ceil(len(self.data) / 3) * 78 // 76

    def base64_body(self) -> bytes:
        if self._base64 is None:
            encoded = binascii.b2a_base64(self.data, newline=False)
            self._base64 = b"\r\n".join(
                encoded[i : i + _BASE64_LINE] for i in range(0, len(encoded), _BASE64_LINE)
            )
        return self._base64


@dataclass(frozen=True, slots=True)
class AttachmentBody:
    filename: str
    content_type: str
    content: Content


def minimum_size(command: SendEmail) -> int:
    """A lower bound of the raw message's size, known before any attachment is read."""
    encoded_attachments = sum(4 * math.ceil(ref.size / 3) for ref in command.attachments)
    return encoded_attachments + len(command.html or "") + len(command.text or "")


def build_message(
    command: SendEmail, *, sender_name: str | None, attachments: Sequence[AttachmentBody], date: datetime
) -> bytes:
    """The raw message for ``command``, From the account's address and display name (the
    command's ``from_name`` first, then ``sender_name``)."""
    try:
        return _write(command, sender_name, attachments, date)
    except InvalidMessage:
        raise
    except Exception as exc:  # the contract: nothing but InvalidMessage leaves the builder
        raise InvalidMessage(f"the message could not be built: {exc!r}"[:_MAX_DETAIL]) from exc


def _write(
    command: SendEmail, sender_name: str | None, attachments: Sequence[AttachmentBody], date: datetime
) -> bytes:
    headers = _message_headers(command, sender_name, date)
    attachment_heads = [_attachment_head(attachment) for attachment in attachments]
    text = command.text if command.text is not None else html_to_text(command.html or "")
    body = [_text_entity(text, "plain")]
    if command.html is not None:
        body = _multipart("alternative", [body, [_text_entity(command.html, "html")]])
    if attachments:
        # The cached base64 body of each attachment, then the line end the generator would write.
        attached = [
            [head, attachment.content.base64_body(), b"\r\n"]
            for head, attachment in zip(attachment_heads, attachments, strict=True)
        ]
        body = _multipart("mixed", [body, *attached])
    return b"".join([headers, *body])


def _message_headers(command: SendEmail, sender_name: str | None, date: datetime) -> bytes:
    """The message's own header lines (Content-* aside), in the order the stdlib would write them."""
    sender = mailbox(command.from_address, "From", display_name=command.from_name or sender_name)
    lines = [address_field("From", [sender])]
    for field, texts in (("To", command.to), ("Cc", command.cc), ("Bcc", command.bcc)):
        if texts:
            lines.append(address_field(field, [mailbox(text, field) for text in texts]))
    if not (command.to or command.cc or command.bcc):
        raise InvalidMessage("the message has no recipient")
    if command.reply_to:  # not a recipient: where the recipients' replies go
        lines.append(address_field("Reply-To", [mailbox(text, "Reply-To") for text in command.reply_to]))
    lines += [
        unstructured("Subject", command.subject, "subject"),
        f"Date: {utils.format_datetime(date)}\r\n",
        "MIME-Version: 1.0\r\n",
        message_id_field("Message-ID", [message_id(command.rfc_message_id, "rfc_message_id")]),
    ]
    references = [message_id(value, "references") for value in command.references]
    if command.in_reply_to:
        in_reply_to = message_id(command.in_reply_to, "in_reply_to")
        lines.append(message_id_field("In-Reply-To", [in_reply_to]))
        references = references or [in_reply_to]
    if references:
        lines.append(message_id_field("References", references))
    if command.unsubscribe_url is not None:
        lines.append(list_unsubscribe_fields(command.unsubscribe_url, command.unsubscribe_mailto))
    return "".join(lines).encode("ascii")


def _attachment_head(attachment: AttachmentBody) -> bytes:
    """An attachment part's header lines and blank line."""
    head = (
        f"Content-Type: {_media_type(attachment.content_type)}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f"{attachment_disposition(attachment.filename)}\r\n"
    )
    return head.encode("ascii")


def _text_entity(text: str, subtype: str) -> bytes:
    """A text part's header lines and body as ``MIMEPart.set_content(text, subtype)`` writes them."""
    encoding, body = _text_body(text)
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n'
    return head.encode("ascii") + body


def _text_body(text: str) -> tuple[str, bytes]:
    """The transfer encoding and CRLF body the stdlib picks for ``text`` in utf-8 under the SMTP
    policy (``email.contentmanager._encode_text``): 7bit, or 8bit if not ASCII, when no line is
    longer than 78 bytes; else quoted-printable, unless base64 is shorter on the first 10 lines."""
    lines = text.encode().splitlines()
    if max(map(len, lines), default=0) <= _MAX_LINE:
        body = b"\r\n".join(lines) + b"\r\n"
        return ("7bit" if body.isascii() else "8bit"), body
    sniff = b"\r\n".join(lines[:_QP_SNIFF_LINES]) + b"\r\n"
    quoted = quoprimime.body_encode(sniff.decode("latin-1"), _MAX_LINE)
    if len(quoted) > len(binascii.b2a_base64(sniff)):
        data = b"\r\n".join(lines) + b"\r\n"
        chunks = (data[i : i + _BASE64_CHUNK] for i in range(0, len(data), _BASE64_CHUNK))
        return "base64", b"".join(binascii.b2a_base64(chunk, newline=False) + b"\r\n" for chunk in chunks)
    if len(lines) > _QP_SNIFF_LINES:
        quoted = quoprimime.body_encode((b"\n".join(lines) + b"\n").decode("latin-1"), _MAX_LINE)
    # The encoder ends lines with "\n"; the generator writes each as CRLF.
    return "quoted-printable", quoted.replace("\n", "\r\n").encode("ascii")


def _multipart(subtype: str, parts: Sequence[Sequence[bytes]]) -> list[bytes]:
    """A multipart entity (header lines, boundaries, parts) as the generator lays it out, in pieces
    so that an attachment's body is copied once, into the message."""
    boundary = _boundary()
    head = parameter_line(f"Content-Type: multipart/{subtype}", f'boundary="{boundary}"')
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    pieces = [f"{head}\r\n--{boundary}\r\n".encode("ascii")]
    for index, part in enumerate(parts):
        if index:
            pieces.append(delimiter)
        pieces.extend(part)
    pieces.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    return pieces


def _media_type(content_type: str) -> str:
    """The attachment's media type, normalised; a malformed one is not copied into the headers,
    and a ``multipart/*`` or ``message/*`` one, whose body may not be base64 (RFC 2046), is sent
    as the opaque bytes it is."""
    normal = content_type.strip().lower()
    if not _MEDIA_TYPE.fullmatch(normal) or normal.startswith(("multipart/", "message/")):
        return "application/octet-stream"
    return normal


def _boundary() -> str:
    # Random and long, so no content can contain it: the generator need not scan for a safe one.
    return "mm-" + secrets.token_hex(16)
