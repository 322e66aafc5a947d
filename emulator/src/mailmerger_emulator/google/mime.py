"""Reading a submitted message the way Gmail does before it accepts it (the send hot path).

Only the header block is parsed here: Gmail refuses a message for its envelope (recipients,
sender, size, encoding), never for its body, and parsing a 100 KB body on every send would cost
more than the rest of the request. Bodies are parsed lazily, once, by ``content.py``.

The header block is parsed with the stdlib ``email`` package under ``compat32`` plus
``email.utils``/``email.header``: measured at ~40 µs per message against ~1 ms for a full
``policy.default`` parse, which alone would cap the emulator near 1,000 sends/s.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import formatdate, getaddresses, make_msgid

import pybase64

from mailmerger_emulator.google.errors import api_error, bad_request, invalid_argument

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_MSGID = re.compile(r"<[^<>\s]+>")
_HEADERS = HeaderParser(policy=policy.compat32)


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """An accepted message as stored: ``raw`` is what ``format=raw`` returns (Bcc removed).

    ``headers`` are the unfolded, still-encoded header fields in order, without Bcc; the Bcc
    recipients are kept apart in ``bcc``.
    """

    raw: bytes
    headers: tuple[tuple[str, str], ...]
    message_id: str
    subject: str
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    referenced_ids: tuple[str, ...]


def decode_raw(value: str) -> bytes:
    """The ``raw`` field: base64url, padding optional, like every proto3 JSON ``bytes`` field
    (which also accepts the standard alphabet, and so does this, though not both in one value)."""
    try:
        data = value.strip().encode("ascii")
        altchars = None if b"+" in data or b"/" in data else b"-_"
        return pybase64.b64decode(data + b"=" * (-len(data) % 4), altchars=altchars, validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise api_error(
            400,
            "invalid",
            f"Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed for \"{value[:40]}\"",
        ) from None


def decode_header_value(value: str) -> str:
    """An RFC 2047 header value as text (unfolded); undecodable words are left as written."""
    value = _FOLD.sub("", value)
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, ValueError, UnicodeDecodeError):
        return value


def read_envelope(raw: bytes, *, account: str, now: float, max_bytes: int, max_recipients: int) -> Envelope:
    """Validate ``raw`` as a message ``account`` may send, completing it as Gmail does.

    Gmail fills in a missing From (the account), Date and Message-ID, and removes Bcc from the
    copy it keeps.
    """
    if len(raw) > max_bytes:
        raise bad_request(f"Request payload size exceeds the limit: {max_bytes} bytes.")
    blank = _BLANK_LINE.search(raw)
    header_end = blank.start() if blank else len(raw)
    parsed = _HEADERS.parsestr(raw[:header_end].decode("utf-8", "replace"), headersonly=True)

    to = _addresses(parsed, "To")
    cc = _addresses(parsed, "Cc")
    bcc = _addresses(parsed, "Bcc")
    unique = {address.lower() for address in (*to, *cc, *bcc)}
    if not unique:
        raise invalid_argument("Recipient address required")
    if len(unique) > max_recipients:
        raise invalid_argument(f"Too many recipients: at most {max_recipients} (To, Cc and Bcc together)")
    senders = _addresses(parsed, "From")
    if len(senders) > 1 or (senders and senders[0].lower() != account):
        raise invalid_argument(f"Invalid From header: {', '.join(senders)} is not the address of {account}")

    added: list[tuple[str, str]] = []
    if not senders:
        added.append(("From", account))
    if parsed["Date"] is None:
        added.append(("Date", formatdate(now)))
    message_id = _first_msgid(parsed["Message-ID"])
    if message_id is None:
        message_id = make_msgid(domain="mail.gmail.com")
        added.append(("Message-ID", message_id))

    stored_raw = raw
    if parsed["Bcc"] is not None:
        stored_raw = _without_bcc(raw, header_end)
    if added:
        eol = "\r\n" if raw[header_end : header_end + 1] == b"\r" else "\n"  # keep the message's line ends
        stored_raw = "".join(f"{name}: {value}{eol}" for name, value in added).encode() + stored_raw

    headers = tuple(added) + tuple(
        (name, _FOLD.sub("", value)) for name, value in parsed.items() if name.lower() != "bcc"
    )
    referenced = tuple(
        _MSGID.findall(" ".join([*parsed.get_all("In-Reply-To", []), *parsed.get_all("References", [])]))
    )
    return Envelope(
        raw=stored_raw,
        headers=headers,
        message_id=message_id,
        subject=decode_header_value(parsed["Subject"] or ""),
        sender=senders[0] if senders else account,
        to=to,
        cc=cc,
        bcc=bcc,
        referenced_ids=referenced,
    )


def _addresses(parsed: Message, field: str) -> tuple[str, ...]:
    values = parsed.get_all(field)
    if not values:
        return ()
    found = []
    for name, address in getaddresses([_FOLD.sub("", value) for value in values]):
        if not name and not address:
            continue
        local, at, domain = address.rpartition("@")
        if not (at and local and domain) or " " in address:
            raise invalid_argument(f"Invalid {field} header")
        found.append(address)
    return tuple(found)


def _first_msgid(value: str | None) -> str | None:
    if value is None:
        return None
    match = _MSGID.search(value)
    return match.group(0) if match else (value.strip() or None)


def _without_bcc(raw: bytes, header_end: int) -> bytes:
    """``raw`` with every Bcc field (and its folded continuation lines) cut from the header block."""
    kept: list[bytes] = []
    dropping = False
    for line in raw[:header_end].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(b":", 1)[0].strip().lower() == b"bcc"
        if not dropping:
            kept.append(line)
    return b"".join(kept) + raw[header_end:]


def split_related_upload(body: bytes, content_type: str) -> tuple[bytes, bytes]:
    """The JSON metadata part and the message part of an ``uploadType=multipart`` request."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/related" or not isinstance(boundary, str):
        raise bad_request("Invalid multipart request with 0 mime parts.")
    delimiter = b"--" + boundary.encode()
    sections = body.split(delimiter)[1:]
    parts: list[tuple[str, bytes]] = []
    for section in sections:
        if section.startswith(b"--"):
            break
        section = section.removeprefix(b"\r\n").removeprefix(b"\n").removesuffix(b"\n").removesuffix(b"\r")
        blank = _BLANK_LINE.search(section)
        if blank is None:
            raise bad_request("Invalid multipart request: a part has no header block.")
        part_headers = _HEADERS.parsestr(section[: blank.start()].decode("latin-1"), headersonly=True)
        parts.append((part_headers.get_content_type(), section[blank.end() :]))
    if len(parts) != 2 or parts[0][0] != "application/json":
        raise bad_request(f"Invalid multipart request with {len(parts)} mime parts.")
    check_message_media(parts[1][0])
    return parts[0][1], parts[1][1]


def check_message_media(content_type: str) -> None:
    """Refuse uploaded media that is not ``message/*``, as Google words it."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not media_type.startswith("message/"):
        raise bad_request(f"Media type '{media_type}' is not supported. Valid media types: [message/*]")


def read_received(raw: bytes, *, now: float) -> Envelope:
    """A message arriving from elsewhere, as Gmail stores it: no sender or recipient checks (the
    other side's server made them), a Date and Message-ID added when missing."""
    blank = _BLANK_LINE.search(raw)
    header_end = blank.start() if blank else len(raw)
    parsed = _HEADERS.parsestr(raw[:header_end].decode("utf-8", "replace"), headersonly=True)
    added: list[tuple[str, str]] = []
    if parsed["Date"] is None:
        added.append(("Date", formatdate(now)))
    message_id = _first_msgid(parsed["Message-ID"])
    if message_id is None:
        message_id = make_msgid(domain="mx.google.com")
        added.append(("Message-ID", message_id))
    stored_raw = raw
    if added:
        eol = "\r\n" if raw[header_end : header_end + 1] == b"\r" else "\n"
        stored_raw = "".join(f"{name}: {value}{eol}" for name, value in added).encode() + raw
    senders = [address for _, address in getaddresses(parsed.get_all("From", [])) if address]
    recipients = {
        field: tuple(address for _, address in getaddresses(parsed.get_all(field, [])) if address)
        for field in ("To", "Cc")
    }
    return Envelope(
        raw=stored_raw,
        headers=tuple(added) + tuple((name, _FOLD.sub("", value)) for name, value in parsed.items()),
        message_id=message_id,
        subject=decode_header_value(parsed["Subject"] or ""),
        sender=senders[0] if senders else "",
        to=recipients["To"],
        cc=recipients["Cc"],
        bcc=(),
        referenced_ids=tuple(
            _MSGID.findall(" ".join([*parsed.get_all("In-Reply-To", []), *parsed.get_all("References", [])]))
        ),
    )
