"""Building the RFC 5322 message of a ``SendEmail``, byte for byte as the stdlib ``email`` package
would with ``policy.SMTP``. Pure.

Invariants:
- Header injection is impossible by construction: every value a user could influence is checked
  for control characters (CR and LF included) and refused with ``InvalidMessage``; addresses are
  parsed (by the stdlib's parser, or the fast path's stricter grammar), then rebuilt from their
  parts, so a display name can never smuggle in another address or header; non-ASCII names and
  subjects are RFC 2047 words, non-ASCII filenames RFC 2231 parameters.
- ``Message-ID`` is the command's deterministic ``rfc_message_id``, the same on every attempt.
- The result is the same bytes the plain ``email`` generator would write (tests pin this), only
  cheaper, in two ways:

  - ``write_directly``, the fast path (~9x cheaper; ``html_to_text`` is most of what is left),
    writes the bytes itself when every header is inside a small domain where the stdlib's output
    is a plain format: each header value printable ASCII without ``=?`` (which the stdlib would
    decode as an RFC 2047 word) and its line at most 78 characters (no folding; the multipart
    boundary and the filename parameter, the stdlib moves to a line of their own, and so does the
    fast path); addresses ``local@domain`` or ``Name <local@domain>`` with a dot-atom local part,
    an ASCII domain of letter-digit-hyphen labels (which IDNA leaves as they are) and a display
    name of atoms or one quoted string of words; message ids ``<dot-atom@dot-atom>``; filenames
    of printable ASCII words (no quote or backslash); attachments that are not ``multipart/*`` or
    ``message/*``. Nothing in the domain can be refused or needs an encoded word, so the fast
    path only formats what the stdlib would; bodies get the stdlib's own choice of transfer
    encoding (``_text_body``).
  - ``build_with_email_package`` is everything else, and the reference: it builds the tree with
    the ``email`` package and has the generator write it, splicing the attachments' cached base64
    bodies in (see ``_splice_attachments``).
"""

from __future__ import annotations

import binascii
import functools
import math
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy, quoprimime, utils
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import MIMEPart
from typing import TypeVar

from mailmerger_sender.html_text import html_to_text
from mailmerger_shared.contracts import SendEmail

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MSG_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_BASE64_LINE = 76
_T = TypeVar("_T")

# --- the fast path's domain -------------------------------------------------------------------
_MAX_LINE = 78  # policy.SMTP's max_line_length: the longest header line the stdlib leaves unfolded
_PRINTABLE = re.compile(r"[ -~]+")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_LDH_LABEL = r"[A-Za-z0-9-]{1,63}"  # IDNA keeps an ASCII label of 1 to 63 characters as it is
_ADDR_SPEC = rf"{_DOT_ATOM}@{_LDH_LABEL}(?:\.{_LDH_LABEL})*"
_WORDS = r"[!#-\[\]-~]+(?: [!#-\[\]-~]+)*"  # printable, no quote or backslash, single spaces
_SIMPLE_MAILBOX = re.compile(
    rf'(?:(?P<atoms>{_ATEXT}+(?: {_ATEXT}+)*)|"(?P<quoted>{_WORDS})") <(?P<angled>{_ADDR_SPEC})>'
    rf"|(?P<bare>{_ADDR_SPEC})"
)
_SIMPLE_MSG_ID = re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>")
_SIMPLE_FILENAME = re.compile(_WORDS)
# The characters that make the stdlib quote a display name (email._header_value_parser.SPECIALS).
_SPECIALS = frozenset('()<>@,:;.\\"[]')
_QP_SNIFF_LINES = 10  # the stdlib picks quoted-printable or base64 from a body's first 10 lines
_BASE64_CHUNK = _MAX_LINE // 4 * 3  # bytes per base64 line of a text body (57: 76 characters)


class InvalidMessage(ValueError):
    """The command cannot become a valid message; sending it again cannot help."""


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


class _MemoizedRegistry(HeaderRegistry):
    """The stdlib registry builds a new class for every header it parses (~10 us each); the class
    depends only on the header's name, so build each once."""

    @functools.cache  # noqa: B019  # one registry per process, kept for its lifetime
    def __getitem__(self, name: str) -> type[BaseHeader]:
        return super().__getitem__(name)


POLICY = policy.SMTP.clone(header_factory=_MemoizedRegistry())


def minimum_size(command: SendEmail) -> int:
    """A lower bound of the raw message's size, known before any attachment is read."""
    encoded_attachments = sum(4 * math.ceil(ref.size / 3) for ref in command.attachments)
    return encoded_attachments + len(command.html or "") + len(command.text or "")


def build_message(
    command: SendEmail, *, sender_name: str | None, attachments: Sequence[AttachmentBody], date: datetime
) -> bytes:
    """The raw message for ``command``, From the account's address and display name."""
    written = write_directly(command, sender_name=sender_name, attachments=attachments, date=date)
    if written is not None:
        return written
    return build_with_email_package(command, sender_name=sender_name, attachments=attachments, date=date)


# --- the fast path ----------------------------------------------------------------------------


def write_directly(
    command: SendEmail, *, sender_name: str | None, attachments: Sequence[AttachmentBody], date: datetime
) -> bytes | None:
    """The bytes ``build_with_email_package`` would return, written directly; None when ``command``
    is outside the fast path's domain (see the module docstring), for the email package to build.

    Everything is checked before the first boundary is drawn, so a command left to the email
    package has not used up any randomness (the equivalence tests replay it).
    """
    headers = _simple_headers(command, sender_name, date)
    attachment_heads = _every(_simple_attachment_head(attachment) for attachment in attachments)
    if headers is None or attachment_heads is None:
        return None
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


def _simple_headers(command: SendEmail, sender_name: str | None, date: datetime) -> bytes | None:
    """The message's own header lines (Content-* aside), when each is a plain line; else None."""
    if not (command.to or command.cc or command.bcc):
        return None
    values = [("From", _simple_mailbox(command.from_address, display_name=command.from_name or sender_name))]
    for field, texts in (("To", command.to), ("Cc", command.cc), ("Bcc", command.bcc)):
        if texts:
            mailboxes = _every(_simple_mailbox(text) for text in texts)
            values.append((field, None if mailboxes is None else ", ".join(mailboxes)))
    values += [
        ("Subject", command.subject),
        ("Date", utils.format_datetime(date)),
        ("MIME-Version", "1.0"),
        ("Message-ID", _simple_message_id(command.rfc_message_id)),
    ]
    references = _every(_simple_message_id(value) for value in command.references)
    in_reply_to = _simple_message_id(command.in_reply_to) if command.in_reply_to else ""
    if references is None or in_reply_to is None:
        return None
    if in_reply_to:
        values.append(("In-Reply-To", in_reply_to))
        references = references or [in_reply_to]
    if references:
        values.append(("References", " ".join(references)))
    lines = _every(_header_line(name, value) for name, value in values)
    return None if lines is None else "".join(lines).encode("ascii")


def _every(values: Iterable[_T | None]) -> list[_T] | None:
    """All the ``values``, or None if one is None: one value outside the domain is enough."""
    kept = []
    for value in values:
        if value is None:
            return None
        kept.append(value)
    return kept


def _header_line(name: str, value: str | None) -> str | None:
    """``name: value`` as the stdlib writes it, when that is one unfolded line of printable ASCII
    without an RFC 2047 look-alike (the stdlib would decode ``=?...?=``); else None."""
    if value is None or not _PRINTABLE.fullmatch(value) or "=?" in value:
        return None
    line = f"{name}: {value}"
    return line + "\r\n" if len(line) <= _MAX_LINE else None


def _parameter_header(head: str, parameter: str) -> str | None:
    """``head; parameter`` as the stdlib folds it: on one line when it fits, else the parameter on
    its own line (its ``_fold_mime_parameters``); None when even that line would be too long."""
    line = f"{head}; {parameter}"
    if len(line) <= _MAX_LINE:
        return line + "\r\n"
    if len(parameter) + 2 <= _MAX_LINE:
        return f"{head};\r\n {parameter}\r\n"
    return None


def _simple_mailbox(text: str, *, display_name: str | None = None) -> str | None:
    """The mailbox ``text`` as ``_address`` rebuilds it (with ``display_name`` if given), when it is
    a plain ASCII mailbox the stdlib writes back unchanged; else None. The name is quoted as
    ``Address`` quotes it; ``_header_line`` then checks the whole value."""
    match = _SIMPLE_MAILBOX.fullmatch(text)
    if match is None:
        return None
    addr_spec = match["angled"] or match["bare"]
    name = display_name if display_name is not None else match["atoms"] or match["quoted"] or ""
    if not name:
        return addr_spec
    if not _SPECIALS.isdisjoint(name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{addr_spec}>"


def _simple_message_id(value: str) -> str | None:
    """``_message_id(value)``, when ``value`` is a plain ASCII ``<dot-atom@dot-atom>``; else None."""
    if not _PRINTABLE.fullmatch(value):
        return None  # strip() would hide a control character that _message_id refuses
    candidate = value.strip()
    if not candidate.startswith("<"):
        candidate = f"<{candidate}>"
    return candidate if _SIMPLE_MSG_ID.fullmatch(candidate) else None


def _simple_attachment_head(attachment: AttachmentBody) -> bytes | None:
    """An attachment part's header lines and blank line, when they are plain; else None."""
    content_type = _media_type(attachment.content_type)
    maintype = content_type.partition("/")[0]
    # The generator writes a multipart/* or message/* part's (placeholder) body raw, not as base64
    # lines: leave those to it. The subtype is one token without whitespace, which the stdlib never
    # folds, so the line stays whole however long it is once the main type fits.
    if maintype in ("multipart", "message") or len(f"Content-Type: {maintype}/") > _MAX_LINE:
        return None
    if not _SIMPLE_FILENAME.fullmatch(attachment.filename) or "=?" in attachment.filename:
        return None
    disposition = _parameter_header("Content-Disposition: attachment", f'filename="{attachment.filename}"')
    if disposition is None:
        return None
    head = f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n{disposition}\r\n"
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
    head = _parameter_header(f"Content-Type: multipart/{subtype}", f'boundary="{boundary}"')
    if head is None:
        raise AssertionError("a boundary from _boundary() fits on a line of its own")
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    pieces = [f"{head}\r\n--{boundary}\r\n".encode("ascii")]
    for index, part in enumerate(parts):
        if index:
            pieces.append(delimiter)
        pieces.extend(part)
    pieces.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    return pieces


# --- the email package path: the reference and fallback ---------------------------------------


def build_with_email_package(
    command: SendEmail, *, sender_name: str | None, attachments: Sequence[AttachmentBody], date: datetime
) -> bytes:
    """``build_message`` by the email package: its tree, generator and header registry."""
    # A MIMEPart root, like its parts (EmailMessage would add MIME-Version to every part it makes).
    message = MIMEPart(policy=POLICY)
    message["From"] = _address(command.from_address, "From", display_name=command.from_name or sender_name)
    for field, values in (("To", command.to), ("Cc", command.cc), ("Bcc", command.bcc)):
        if values:
            message[field] = [_address(value, field) for value in values]
    if not (command.to or command.cc or command.bcc):
        raise InvalidMessage("the message has no recipient")
    message["Subject"] = _header_text(command.subject, "Subject")
    message["Date"] = date
    message["MIME-Version"] = "1.0"
    message["Message-ID"] = _message_id(command.rfc_message_id, "rfc_message_id")
    references = [_message_id(value, "references") for value in command.references]
    if command.in_reply_to:
        in_reply_to = _message_id(command.in_reply_to, "in_reply_to")
        message["In-Reply-To"] = in_reply_to
        references = references or [in_reply_to]
    if references:
        message["References"] = " ".join(references)

    text = command.text if command.text is not None else html_to_text(command.html or "")
    message.set_content(text)
    if command.html is not None:
        message.make_alternative(boundary=_boundary())
        html = MIMEPart(policy=POLICY)
        html.set_content(command.html, subtype="html")
        message.attach(html)
    if not attachments:
        return message.as_bytes()

    message.make_mixed(boundary=_boundary())
    placeholder = secrets.token_hex(16)
    for index, attachment in enumerate(attachments):
        message.attach(_attachment_part(attachment, f"{placeholder}.{index}"))
    return _splice_attachments(message.as_bytes(), placeholder, attachments)


def _attachment_part(attachment: AttachmentBody, placeholder: str) -> MIMEPart:
    maintype, subtype = _media_type(attachment.content_type).split("/")
    part = MIMEPart(policy=POLICY)
    part.set_content(
        b"",
        maintype,
        subtype,
        disposition="attachment",
        filename=_header_text(attachment.filename, "attachment filename"),
    )
    part.set_payload(placeholder + "\n")
    return part


def _splice_attachments(raw: bytes, placeholder: str, attachments: Sequence[AttachmentBody]) -> bytes:
    """Put each attachment's base64 body where the generator wrote its placeholder line.

    The generator writes a body line by line (~1.5 ms for 100 KB); writing the placeholder
    ``<random>.<index>`` and splicing the encoded body in costs a copy. The placeholder is random per
    message, so no user content can contain it, and each attachment's appears exactly once.
    """
    pieces = raw.split(placeholder.encode())
    if len(pieces) != len(attachments) + 1:
        raise AssertionError("every attachment placeholder appears exactly once")
    for slot in range(1, len(pieces)):
        index, line_end, rest = pieces[slot].partition(b"\r\n")
        body = attachments[int(index.removeprefix(b"."))].content.base64_body()
        pieces[slot] = body + line_end + rest
    return b"".join(pieces)


def _media_type(content_type: str) -> str:
    """The attachment's media type, normalised; a malformed one is not copied into the headers."""
    normal = content_type.strip().lower()
    return normal if _MEDIA_TYPE.fullmatch(normal) else "application/octet-stream"


def _boundary() -> str:
    # Random and long, so no content can contain it: the generator need not scan for a safe one.
    return "mm-" + secrets.token_hex(16)


def _header_text(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise InvalidMessage(f"{what} contains a line break or control character")
    return value


def _message_id(value: str, what: str) -> str:
    candidate = _header_text(value, what).strip()
    if not candidate.startswith("<"):
        candidate = f"<{candidate}>"
    if not _MSG_ID.fullmatch(candidate):
        raise InvalidMessage(f"{what} is not a message id: {value[:100]!r}")
    return candidate


def _address(text: str, field: str, *, display_name: str | None = None) -> Address:
    """One mailbox parsed from ``text`` and rebuilt from its parts."""
    _header_text(text, field)
    refused = InvalidMessage(f"{field} must be one valid address, not {text[:100]!r}")
    try:
        parsed = POLICY.header_factory(field, text)
        addresses: tuple[Address, ...] = getattr(parsed, "addresses", ())
    except (TypeError, IndexError, AttributeError, ValueError):
        # The stdlib parser fails this way on some malformed input ("", "  .a@a..b ") instead of
        # recording a defect; it is the same refusal.
        raise refused from None
    if len(addresses) != 1 or parsed.defects:
        raise refused
    found = addresses[0]
    if not found.username or not found.domain or not found.username.isascii():
        raise InvalidMessage(f"{field} address {found.addr_spec[:100]!r} cannot be sent")
    try:
        domain = found.domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidMessage(f"{field} domain {found.domain[:100]!r} is not valid") from None
    name = display_name if display_name is not None else found.display_name
    return Address(_header_text(name or "", f"{field} display name"), found.username, domain)
