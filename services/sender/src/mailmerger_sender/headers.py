"""Writing a message's header fields ourselves: plain lines, RFC 2047 words, RFC 2231 names. Pure.

Invariants:
- Header injection is impossible by construction, whatever the Python version: no text of a
  command is ever handed to the ``email`` package's header parser (which decodes the encoded words
  it finds and, on 3.11.7, wrote the CR/LF of ``=?utf-8?q?x=0D=0ABcc:...?=`` out raw). Each text is
  first held to the shared header-text rule (``check_text``: no line break, control, Unicode
  separator or surrogate), then written in one of two forms only:

  - as itself, when it is printable ASCII that a grammar here accepts (words, a quoted string, an
    addr-spec, a message id) and holds no ``=?``, which readers would take for an encoded word;
  - otherwise encoded: ``=?utf-8?b?...?=`` words (base64 has no space, ``?``, CR or LF) or an RFC
    2231 ``filename*`` of percent-escaped UTF-8.

  So the decoded form of every header is exactly the checked text, and the only CRLFs in the
  header block are the ones written here, each followed by a space (a fold) or ending a field.
- Addresses are parsed by the grammar below (``local@domain``, ``Name <local@domain>``,
  ``"Quoted, Name" <local@domain>``), never by the stdlib, and rebuilt from their parts: a display
  name cannot add an address or a header. Local parts are ASCII dot-atoms without ``=?``;
  domains are written in IDNA.
- A plain value is written byte for byte as the ``email`` package writes it under
  ``policy.SMTP`` (tests pin this): one line of at most 78 characters. A longer plain value folds
  at single spaces; anything else is encoded in words of at most 75 characters, on lines of at
  most 76 (RFC 2047), never splitting a UTF-8 character.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from typing import NamedTuple

from mailmerger_shared.header_text import FORBIDDEN, header_text_problem

_MAX_LINE = 78  # policy.SMTP's max_line_length: the longest header line the stdlib leaves unfolded
_MAX_ENCODED_LINE = 76  # RFC 2047: the longest line that holds an encoded word
_WORD_HEAD, _WORD_TAIL = "=?utf-8?b?", "?="
_MAX_PLAIN_PIECE = _MAX_ENCODED_LINE - 1  # a piece longer than this fits on no folded line

_PRINTABLE = re.compile(r"[ -~]*")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_WORDS = re.compile(r"[!-~]+(?: [!-~]+)*")  # printable ASCII words, single spaces, no ends
_FILENAME_WORDS = re.compile(r"[!#-\[\]-~]+(?: [!#-\[\]-~]+)*")  # the same, without quote or backslash
_FOLD_POINT = re.compile(r"(?<=[!-~]) (?=[!-~])")  # a single space between two words
# The characters that make the stdlib quote a display name (email._header_value_parser.SPECIALS).
_SPECIALS = frozenset('()<>@,:;.\\"[]')

# A mailbox as the sender accepts it: an addr-spec, alone or in angle brackets after a display
# name (words separated by blanks, or one quoted string).
_PHRASE = re.compile(r'[^ \t"(),.:;<>@\[\\\]]+(?:[ \t]+[^ \t"(),.:;<>@\[\\\]]+)*')
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ADDR_SPEC = re.compile(rf'(?P<local>{_ATEXT}+(?:\.{_ATEXT}+)*)@(?P<domain>[^ \t@<>()\[\]\\,;:"]+)')
_BLANKS = re.compile(r"[ \t]+")
_QUOTED_PAIR = re.compile(r"\\(.)")
_LDH_DOMAIN = re.compile(r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*")
# The common mailbox, matched in one step: ASCII words then an ASCII addr-spec in brackets, or the
# addr-spec alone, within the length limits (parse_mailbox returns the same; the tests check it).
_COMMON_ADDR_SPEC = rf"(?=[^@]{{1,64}}@)(?=.{{1,254}}(?:>|$)){_ATEXT}+(?:\.{_ATEXT}+)*@{_LDH_DOMAIN.pattern}"
_COMMON_MAILBOX = re.compile(
    rf"(?:(?P<name>{_ATEXT}+(?: {_ATEXT}+)*) <(?P<angled>{_COMMON_ADDR_SPEC})>|(?P<bare>{_COMMON_ADDR_SPEC}))"
)
_MAX_LOCAL_PART = 64
_MAX_ADDR_SPEC = 254

_MSG_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")
_MAX_MSG_ID = 250  # far inside the 998-character line, which a message id cannot be folded across

# List-Unsubscribe URIs (RFC 2369, RFC 8058): an http(s) URL of unreserved and path characters and
# a mailto: of an addr-spec with an optional subject. No blank, comma, angle bracket or quote, so a
# URI can neither end the bracketed list item early nor start another one.
_UNSUBSCRIBE_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/[A-Za-z0-9._~/%?=&:-]*")
_UNSUBSCRIBE_MAILTO = re.compile(
    rf"mailto:{_ATEXT}+(?:\.{_ATEXT}+)*@{_LDH_DOMAIN.pattern}(?:\?subject=[A-Za-z0-9%._-]+)?"
)
_MAX_UNSUBSCRIBE_URI = 900  # with the field name, well inside the 998-character line

# RFC 2231 attribute-char: what a filename* value keeps as itself; every other byte is %XX.
_ATTR_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~")


class InvalidMessage(ValueError):
    """The command cannot become a valid message; sending it again cannot help."""


class Mailbox(NamedTuple):
    name: str  # the display name, "" for none
    addr_spec: str  # ASCII: a dot-atom local part and an IDNA domain


def check_text(value: str, what: str) -> str:
    """``value``, when the shared header-text rule allows it; else InvalidMessage naming ``what``."""
    if FORBIDDEN.search(value) is not None:  # the common case costs one search
        raise InvalidMessage(f"{what} {header_text_problem(value)}")
    return value


# --- fields -----------------------------------------------------------------------------------


def unstructured(name: str, text: str, what: str) -> str:
    """The field ``name`` holding ``text`` (a subject), CRLF-terminated."""
    check_text(text, what)
    if not text:
        return f"{name}:\r\n"
    if _plain(text) and text[0] != " " and text[-1] != " ":
        line = f"{name}: {text}"
        if len(line) <= _MAX_LINE:
            return line + "\r\n"
        folded = _Lines(name, _MAX_LINE)
        if folded.add_plain(_FOLD_POINT.split(text)):
            return folded.done()
    lines = _Lines(name, _MAX_ENCODED_LINE)
    lines.add_encoded(text)
    return lines.done()


def address_field(name: str, mailboxes: Sequence[Mailbox]) -> str:
    """The field ``name`` listing ``mailboxes``, CRLF-terminated."""
    written = [text for mailbox in mailboxes if (text := _plain_mailbox(mailbox)) is not None]
    if len(written) == len(mailboxes):
        line = f"{name}: {', '.join(written)}"
        if len(line) <= _MAX_LINE:
            return line + "\r\n"
    lines = _Lines(name, _MAX_ENCODED_LINE)
    for index, mailbox in enumerate(mailboxes):
        separator = "," if index < len(mailboxes) - 1 else ""
        if mailbox.name:
            plain = _plain_name(mailbox.name)
            if plain is None or not lines.add_plain(_name_pieces(plain)):
                lines.add_encoded(mailbox.name)
            lines.add(f"<{mailbox.addr_spec}>{separator}")
        else:
            lines.add(f"{mailbox.addr_spec}{separator}")
    return lines.done()


def message_id_field(name: str, message_ids: Sequence[str]) -> str:
    """The field ``name`` listing ``message_ids`` (each from ``message_id``), CRLF-terminated."""
    line = f"{name}: {' '.join(message_ids)}"
    if len(line) <= _MAX_LINE:
        return line + "\r\n"
    lines = _Lines(name, _MAX_LINE)
    for message_id in message_ids:
        lines.add(message_id)
    return lines.done()


def list_unsubscribe_fields(url: str, mailto: str | None) -> str:
    """RFC 8058 one-click unsubscribe: ``List-Unsubscribe`` naming the https ``url`` (and a
    ``mailto:`` URI, when given) and ``List-Unsubscribe-Post``, CRLF-terminated.

    Each URI is checked against a strict ASCII grammar, never escaped for the caller: the queue
    makes them from its public URL and an opaque token, so anything else is a bug upstream.
    """
    uris = [f"<{_unsubscribe_uri(url, _UNSUBSCRIBE_URL, 'unsubscribe_url')}>"]
    if mailto is not None:
        uris.append(f"<{_unsubscribe_uri(mailto, _UNSUBSCRIBE_MAILTO, 'unsubscribe_mailto')}>")
    lines = _Lines("List-Unsubscribe", _MAX_LINE)
    for index, uri in enumerate(uris):
        lines.add(uri + ("," if index < len(uris) - 1 else ""))
    return lines.done() + "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"


def _unsubscribe_uri(value: str, grammar: re.Pattern[str], what: str) -> str:
    if len(value) > _MAX_UNSUBSCRIBE_URI or not grammar.fullmatch(value) or "=?" in value:
        raise InvalidMessage(f"{what} is not an unsubscribe URI this sender writes: {value[:100]!r}")
    return value


def attachment_disposition(filename: str) -> str:
    """``Content-Disposition: attachment`` naming ``filename``: a quoted ``filename`` when it is
    plain, else RFC 2231's ``filename*`` (in sections ``filename*0*``... when one line is not
    enough), CRLF-terminated."""
    check_text(filename, "attachment filename")
    head = "Content-Disposition: attachment"
    if not filename:
        return f'{head}; filename=""\r\n'
    if _FILENAME_WORDS.fullmatch(filename) and "=?" not in filename:
        plain = _parameter_line(head, f'filename="{filename}"')
        if plain is not None:
            return plain
    escaped = [_percent_encoded(character) for character in filename]
    whole = _parameter_line(head, "filename*=utf-8''" + "".join(escaped))
    if whole is not None:
        return whole
    sections: list[str] = []
    section = "filename*0*=utf-8''"
    for piece in escaped:
        # " " + section + ";" must fit on a line.
        if len(section) + len(piece) + 2 > _MAX_LINE:
            sections.append(section)
            section = f"filename*{len(sections)}*="
        section += piece
    sections.append(section)
    return head + ";\r\n " + ";\r\n ".join(sections) + "\r\n"


def parameter_line(head: str, parameter: str) -> str:
    """``head; parameter`` laid out as the stdlib folds it (see ``_parameter_line``), for the
    parameters this sender makes itself (a boundary); it always fits."""
    line = _parameter_line(head, parameter)
    if line is None:
        raise AssertionError(f"{parameter!r} fits on a line of its own")
    return line


# --- values -----------------------------------------------------------------------------------


def mailbox(text: str, what: str, *, display_name: str | None = None) -> Mailbox:
    """The one mailbox ``text`` names, rebuilt from its parts (with ``display_name`` instead of
    its own, if given); InvalidMessage when ``text`` is not exactly one valid mailbox."""
    common = _COMMON_MAILBOX.fullmatch(text)
    if common is not None and "=?" not in text:  # what parse_mailbox returns for it, in one step
        parsed = Mailbox(common["name"] or "", common["angled"] or common["bare"])
    else:
        parsed = parse_mailbox(text, what)
    if display_name is None:
        return parsed
    return Mailbox(check_text(display_name, f"{what} display name"), parsed.addr_spec)


def parse_mailbox(text: str, what: str) -> Mailbox:
    """``mailbox`` by the grammar in full (the module docstring's)."""
    check_text(text, what)
    stripped = text.strip(" \t")
    if stripped.endswith(">"):
        head, bracket, addr_spec = stripped[:-1].rpartition("<")
        head = head.rstrip(" \t")
        quoted = _QUOTED.fullmatch(head) if head.startswith('"') else None
        if quoted is not None:
            name = _QUOTED_PAIR.sub(r"\1", quoted[1])
        elif bracket and (not head or _PHRASE.fullmatch(head)):
            name = _BLANKS.sub(" ", head) if "\t" in head or "  " in head else head
        else:
            raise _not_one_address(text, what)
    else:
        addr_spec, name = stripped, ""
    parts = _ADDR_SPEC.fullmatch(addr_spec)
    if parts is None:
        raise _not_one_address(text, what)
    local, domain = parts["local"], parts["domain"]
    if "=?" in local or len(local) > _MAX_LOCAL_PART:
        raise InvalidMessage(f"{what} address {addr_spec[:100]!r} cannot be sent")
    if not _LDH_DOMAIN.fullmatch(domain):  # IDNA leaves an ASCII LDH domain as it is
        domain = _ascii_domain(domain, what)
    if len(local) + 1 + len(domain) > _MAX_ADDR_SPEC:
        raise InvalidMessage(f"{what} address {addr_spec[:100]!r} is longer than {_MAX_ADDR_SPEC} characters")
    return Mailbox(name, f"{local}@{domain}")


def message_id(value: str, what: str) -> str:
    """``value`` as a message id ``<left@right>`` (brackets added if missing)."""
    candidate = check_text(value, what).strip()
    if not candidate.startswith("<"):
        candidate = f"<{candidate}>"
    if not _MSG_ID.fullmatch(candidate) or "=?" in candidate or len(candidate) > _MAX_MSG_ID:
        raise InvalidMessage(f"{what} is not a message id: {value[:100]!r}")
    return candidate


def _not_one_address(text: str, what: str) -> InvalidMessage:
    return InvalidMessage(f"{what} must be one valid address, not {text[:100]!r}")


def _ascii_domain(domain: str, what: str) -> str:
    try:
        encoded = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidMessage(f"{what} domain {domain[:100]!r} is not valid") from None
    if not _LDH_DOMAIN.fullmatch(encoded):
        raise InvalidMessage(f"{what} domain {domain[:100]!r} is not valid")
    return encoded


# --- layout -----------------------------------------------------------------------------------


def _plain(text: str) -> bool:
    """Printable ASCII without an RFC 2047 look-alike (readers decode ``=?...?=`` wherever it is)."""
    return _PRINTABLE.fullmatch(text) is not None and "=?" not in text


def _plain_name(name: str) -> str | None:
    """A display name as the stdlib writes it, when it is plain: its words, quoted when they hold
    specials; None when it must be encoded."""
    if not _WORDS.fullmatch(name) or "=?" in name:
        return None
    if _SPECIALS.isdisjoint(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _name_pieces(written: str) -> list[str]:
    """Where a plainly written display name may fold: between its words; a quoted string stays whole."""
    return [written] if written.startswith('"') else written.split(" ")


def _plain_mailbox(mailbox: Mailbox) -> str | None:
    if not mailbox.name:
        return mailbox.addr_spec
    name = _plain_name(mailbox.name)
    return None if name is None else f"{name} <{mailbox.addr_spec}>"


def _parameter_line(head: str, parameter: str) -> str | None:
    """``head; parameter`` as the stdlib folds it: on one line when it fits, else the parameter on
    its own line (its ``_fold_mime_parameters``); None when even that line would be too long."""
    line = f"{head}; {parameter}"
    if len(line) <= _MAX_LINE:
        return line + "\r\n"
    if len(parameter) + 2 <= _MAX_LINE:
        return f"{head};\r\n {parameter}\r\n"
    return None


def _percent_encoded(character: str) -> str:
    if character in _ATTR_CHARS:
        return character
    return "".join(f"%{byte:02X}" for byte in character.encode())


class _Lines:
    """A field being laid out: pieces separated by one blank, a piece that does not fit on the
    current line starting the next one (CRLF, space). The first piece always goes on the first
    line; a piece longer than a line is left whole (the grammar keeps those under 998)."""

    def __init__(self, name: str, limit: int) -> None:
        self._limit = limit
        self._lines: list[str] = []
        self._line = f"{name}:"
        self._empty = True  # no piece on the current line yet

    def add(self, piece: str) -> None:
        if not self._empty and len(self._line) + 1 + len(piece) > self._limit:
            self._break()
        self._line += " " + piece
        self._empty = False

    def add_plain(self, pieces: Sequence[str]) -> bool:
        """Add plain ``pieces``, or nothing (False) when one of them could not fit on any line."""
        if any(len(piece) > _MAX_PLAIN_PIECE for piece in pieces):
            return False
        for piece in pieces:
            self.add(piece)
        return True

    def add_encoded(self, text: str) -> None:
        """Add ``text`` as encoded words, each filling what is left of its line."""
        data = text.encode()
        start = 0
        while start < len(data):
            room = self._limit - len(self._line) - 1 - len(_WORD_HEAD) - len(_WORD_TAIL)
            end = _character_boundary(data, start, start + max(room, 0) // 4 * 3)
            if end == start:
                if self._empty:
                    raise AssertionError("an empty line holds a word of at least one character")
                self._break()
                continue
            encoded = binascii.b2a_base64(data[start:end], newline=False).decode("ascii")
            self.add(_WORD_HEAD + encoded + _WORD_TAIL)
            start = end

    def done(self) -> str:
        self._lines.append(self._line)
        return "\r\n".join(self._lines) + "\r\n"

    def _break(self) -> None:
        self._lines.append(self._line)
        self._line = ""
        self._empty = True


def _character_boundary(data: bytes, start: int, end: int) -> int:
    """The largest position at most ``end`` (and past ``start``, if one is) where a UTF-8
    character of ``data`` begins, or the end of ``data``."""
    if end >= len(data):
        return len(data)
    while end > start and data[end] & 0xC0 == 0x80:  # a continuation byte: back off
        end -= 1
    return end
