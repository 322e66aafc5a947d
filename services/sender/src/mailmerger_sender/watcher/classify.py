"""What one incoming message in the thread of a message we sent is, from its headers alone. Pure.

With ``gmail.metadata`` only labels, headers and the snippet are visible (GMAIL_FACTS.md 2.5), so
every rule reads those, in this order (the first that holds decides):

1. **ignored**: our own mail (label ``SENT`` or ``DRAFT``, or ``From`` is the account itself) and
   anything not in ``INBOX`` (spam, trash, archived by a filter before we looked);
2. **sending_limit**: Gmail's own refusal of the account ("You have reached a limit for sending
   mail", "Daily user sending quota exceeded") in the subject or the snippet: the account is
   parked, the recipient did nothing wrong;
3. a **delivery-status notification** (from ``mailer-daemon``/``postmaster`` or "Mail Delivery
   Subsystem"/"Mail Delivery System", ``multipart/report; report-type=delivery-status`` (RFC 3464),
   or ``X-Failed-Recipients``, or a bounce subject): **delay** when its subject says so ("(Delay)",
   "Delivery delayed", "Warning: message … delayed"), else **bounce** (a hard one). DSNs also carry
   ``Auto-Submitted``, hence before the auto-reply rule;
4. **auto_reply**: RFC 3834 ``Auto-Submitted`` other than ``no``, ``X-Autoreply``,
   ``X-Autorespond``, ``Precedence: auto_reply|bulk|junk``, or an auto-reply subject ("Automatic
   reply:", "Out of Office", "Auto:", "Autoreply", "Abwesenheitsnotiz", "Réponse automatique" …);
   a read receipt (RFC 8098 ``report-type=disposition-notification``) counts as one too.
   Subject rules read the subject only; "out of office" inside a subject counts only when the
   subject is not itself a reply ("Re: out of office policy" is a person writing);
5. otherwise a **reply** from a person.

Invariants: ``classify`` never raises, whatever the headers hold (CR/LF, NUL, broken RFC 2047,
megabytes): each value is cut to ``MAX_HEADER_CHARS`` before anything parses it and every decoding
falls back to the raw text. ``detail`` is at most ``MAX_DETAIL_CHARS`` characters of one line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import parseaddr
from typing import Literal

MAX_HEADER_CHARS = 2000
MAX_DETAIL_CHARS = 300
MAX_ADDRESS_CHARS = 320  # RFC 5321: 64 + 1 + 255, with room for a display name's brackets
_SUBJECT_IN_DETAIL = 120

Kind = Literal["reply", "auto_reply", "bounce", "delay", "sending_limit"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_DAEMON_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_DAEMON_NAMES = re.compile(r"\bmail delivery (?:subsystem|system|service)\b|\bmailer[- ]daemon\b", re.I)
_SENDING_LIMIT = re.compile(
    r"reached a limit for sending mail|daily user sending (?:quota|limit) exceeded|"
    r"sending limit exceeded|you have exceeded your sending limit",
    re.I,
)
_DELAY_SUBJECT = re.compile(
    r"\(delay\)|delivery delayed|delayed mail|warning: (?:message|could not send message)\b.*delayed|"
    r"delivery status notification \(delay\)|still being retried",
    re.I,
)
_BOUNCE_SUBJECT = re.compile(
    r"\(failure\)|^\s*undeliverable\b|undelivered mail returned to sender|mail delivery failed|"
    r"delivery status notification \(failure\)|returned mail|delivery failure|failure notice|"
    r"message not delivered|^\s*non[- ]?delivery",
    re.I,
)
_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|antw|fwd?|wg|tr)\s*(?:\[\d+\])?\s*:", re.I)
# Auto-reply subjects as clients write them, at the start of the subject.
_AUTO_SUBJECT_START = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response)|autoreply|auto:|"
    r"out of (?:the )?office|ooo\b|abwesenheitsnotiz|automatische antwort|"
    r"r[ée]ponse automatique|respuesta autom[áa]tica|risposta automatica|"
    r"resposta autom[áa]tica|automatisch antwoord|vacation reply|on vacation)",
    re.I,
)
_AUTO_SUBJECT_ANYWHERE = re.compile(r"out of (?:the )?office|abwesenheitsnotiz|r[ée]ponse automatique", re.I)
_AUTO_PRECEDENCE = frozenset({"auto_reply", "bulk", "junk"})


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingMessage:
    """One message as ``messages.get format=metadata`` shows it."""

    gmail_id: str
    thread_id: str
    label_ids: tuple[str, ...]
    headers: Sequence[tuple[str, str]]
    internal_date_ms: int
    snippet: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """What came back, for ``ResponseReceived`` (or, for ``sending_limit``, ``SenderThrottled``)."""

    kind: Kind
    from_address: str
    received_at: datetime
    failed_recipient: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Ignored:
    why: str


def classify(message: IncomingMessage, account_email: str) -> Response | Ignored:
    """What ``message``, found in one of our threads of ``account_email``'s mailbox, is."""
    labels = set(message.label_ids)
    if labels & {"SENT", "DRAFT"}:
        return Ignored("our own message")
    if "INBOX" not in labels:
        return Ignored("not in the inbox")
    headers = _Headers(message.headers)
    display_name, address = _address(headers.get("from"))
    if address and address == account_email.strip().lower():
        return Ignored("from the account itself")
    subject = headers.get("subject")
    snippet = clean(message.snippet, MAX_HEADER_CHARS)
    received_at = _received_at(message.internal_date_ms)

    def response(kind: Kind, *why: str, failed: str | None = None) -> Response:
        reasons = "; ".join([f'subject "{_shorten(subject, _SUBJECT_IN_DETAIL)}"', *why])
        return Response(
            kind=kind,
            from_address=address or display_name[:MAX_ADDRESS_CHARS],
            received_at=received_at,
            failed_recipient=failed,
            detail=_shorten(reasons, MAX_DETAIL_CHARS),
        )

    if limit := _SENDING_LIMIT.search(subject) or _SENDING_LIMIT.search(snippet):
        return response("sending_limit", f'says "{limit.group(0)}"')

    dsn_signs = _dsn_signs(headers, display_name, address, subject)
    if dsn_signs:
        failed = _first_address(headers.get("x-failed-recipients")) or None
        if _DELAY_SUBJECT.search(subject):
            return response("delay", *dsn_signs)
        return response("bounce", *dsn_signs, failed=failed)

    auto_signs = _auto_reply_signs(headers, subject)
    if auto_signs:
        return response("auto_reply", *auto_signs)
    return response("reply")


def clean(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, on one line, without control characters."""
    return _CONTROL.sub(" ", value[:limit]).strip()


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; the value as it is when they cannot be."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError, TypeError, AssertionError):
        return value


class _Headers:
    """Header values by lower-cased name (the first of each), cut, decoded and on one line."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._values: dict[str, str] = {}
        for name, value in pairs[:500]:
            key = clean(str(name), 100).lower()
            if key not in self._values:
                raw = clean(str(value), MAX_HEADER_CHARS)
                self._values[key] = clean(decode_words(raw), MAX_HEADER_CHARS)

    def get(self, name: str) -> str:
        return self._values.get(name, "")

    def has(self, name: str) -> bool:
        return name in self._values


def _address(value: str) -> tuple[str, str]:
    """(display name, lower-cased address) of a From-like header; empty strings if unreadable."""
    try:
        name, address = parseaddr(value[: MAX_ADDRESS_CHARS * 2])
    except (ValueError, IndexError, TypeError):
        return "", ""
    address = address.strip().lower()
    if "@" not in address or len(address) > MAX_ADDRESS_CHARS:
        address = ""
    return clean(name, MAX_ADDRESS_CHARS), address


def _first_address(value: str) -> str:
    first = value.split(",", 1)[0].strip()
    if not first:
        return ""
    _, address = _address(first)
    return address or first.strip("<> ")[:MAX_ADDRESS_CHARS]


def _dsn_signs(headers: _Headers, display_name: str, address: str, subject: str) -> list[str]:
    signs = []
    local_part = address.partition("@")[0]
    if local_part in _DAEMON_LOCAL_PARTS or _DAEMON_NAMES.search(display_name):
        signs.append(f"from {address or display_name}")
    content_type = headers.get("content-type").lower()
    if "multipart/report" in content_type and "delivery-status" in content_type:
        signs.append("Content-Type: multipart/report; report-type=delivery-status")
    if headers.get("x-failed-recipients"):
        signs.append(f"X-Failed-Recipients: {_shorten(headers.get('x-failed-recipients'), 80)}")
    # A bounce subject alone decides only when nothing says a person wrote it ("Re: Undeliverable?").
    if not _REPLY_PREFIX.match(subject) and (
        _BOUNCE_SUBJECT.search(subject) or _DELAY_SUBJECT.search(subject)
    ):
        signs.append("delivery-status subject")
    return signs


def _auto_reply_signs(headers: _Headers, subject: str) -> list[str]:
    signs = []
    auto_submitted = headers.get("auto-submitted")
    if auto_submitted and auto_submitted.split(";", 1)[0].strip().lower() != "no":
        signs.append(f"Auto-Submitted: {_shorten(auto_submitted, 40)}")
    for name, label in (("x-autoreply", "X-Autoreply"), ("x-autorespond", "X-Autorespond")):
        if headers.has(name) and headers.get(name).strip().lower() not in ("no", "false", "0"):
            signs.append(f"{label}: {_shorten(headers.get(name), 40)}")
    if "disposition-notification" in headers.get("content-type").lower():
        signs.append("a read receipt (report-type=disposition-notification)")
    precedence = headers.get("precedence").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        signs.append(f"Precedence: {precedence}")
    if _AUTO_SUBJECT_START.match(subject) or (
        not _REPLY_PREFIX.match(subject) and _AUTO_SUBJECT_ANYWHERE.search(subject)
    ):
        signs.append("auto-reply subject")
    return signs


def _received_at(internal_date_ms: int) -> datetime:
    try:
        return datetime.fromtimestamp(max(internal_date_ms, 0) / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return datetime.fromtimestamp(0, UTC)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
