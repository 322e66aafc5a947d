"""Mail that arrives in a mailbox: replies, auto-replies and delivery-status notifications.

Gmail's reading side only matters if something arrives, and nothing from outside reaches the
emulator. This module writes the messages the outside world would send back, shaped as
GMAIL_FACTS.md 2.5 describes what a client sees with ``gmail.metadata``:

- a **reply** is from the recipient, "Re: <subject>", with ``In-Reply-To`` naming the sent message's
  Message-ID and ``References`` its chain plus that id, so Gmail threads it with the original;
- an **auto-reply** carries RFC 3834 ``Auto-Submitted: auto-replied`` and an "Automatic reply:"
  subject (Outlook's wording);
- a **delivery-status notification** comes from ``mailer-daemon@googlemail.com`` ("Mail Delivery
  Subsystem"), is ``multipart/report; report-type=delivery-status`` (RFC 3464) with the failed
  address in ``X-Failed-Recipients``, subject "Delivery Status Notification (Failure)" (hard) or
  "(Delay)" (soft), and is threaded with the original.

**Rules** make it happen by itself: a message sent to an address at one of the answering domains
(``bounces.example.com``, ``replies.example.com``, ``ooo.example.com``, ``delays.example.com``)
gets its answer a few seconds later (``MM_EMULATOR_INCOMING_DELAY_SECONDS``). Due mail is
delivered on the emulator's clock, when any API call looks (``Inbound.deliver_due``): a test moves
its clock instead of sleeping.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from email.header import Header
from email.utils import formatdate, make_msgid
from enum import StrEnum

from mailmerger_emulator.google.mailbox import PostOffice, StoredMessage
from mailmerger_emulator.google.mime import decode_header_value, read_received

MAILER_DAEMON = "mailer-daemon@googlemail.com"
_REPLY_PREFIX = ("re:", "aw:")


class IncomingKind(StrEnum):
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"  # "Delivery Status Notification (Failure)": a hard bounce
    DELAY = "delay"  # "Delivery Status Notification (Delay)": a soft bounce


# The answering domains and what a message to an address there brings back. Subdomains of
# example.com (reserved for documentation, RFC 2606: no real mail goes there) rather than ``.test``,
# which the product refuses as an address no mail can reach (email-validator's special-use names).
RULE_DOMAINS: dict[str, IncomingKind] = {
    "bounces.example.com": IncomingKind.BOUNCE,
    "replies.example.com": IncomingKind.REPLY,
    "ooo.example.com": IncomingKind.AUTO_REPLY,
    "delays.example.com": IncomingKind.DELAY,
}


def _header(message: StoredMessage, name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in message.envelope.headers if key.lower() == lowered), None)


def _lines(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _threading_headers(original: StoredMessage) -> list[str]:
    message_id = original.envelope.message_id
    references = " ".join(filter(None, [_header(original, "References"), message_id]))
    return [f"In-Reply-To: {message_id}", f"References: {references}"]


def _common(sender: str, to: str, subject: str, now: float, domain: str) -> list[str]:
    if not subject.isascii():
        subject = Header(subject, "utf-8").encode()  # RFC 2047, as a mail client writes it
    return [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: {formatdate(now)}",
        f"Message-ID: {make_msgid(domain=domain)}",
        "MIME-Version: 1.0",
    ]


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower() or "example.com"


def compose_reply(original: StoredMessage, sender: str, text: str, now: float) -> bytes:
    subject = decode_header_value(original.envelope.subject)
    if not subject.lower().startswith(_REPLY_PREFIX):
        subject = "Re: " + subject
    return _lines(
        *_common(sender, original.owner, subject, now, _domain_of(sender)),
        *_threading_headers(original),
        "Content-Type: text/plain; charset=utf-8",
        "",
        text,
    )


def compose_auto_reply(original: StoredMessage, sender: str, text: str, now: float) -> bytes:
    subject = "Automatic reply: " + decode_header_value(original.envelope.subject)
    return _lines(
        *_common(sender, original.owner, subject, now, _domain_of(sender)),
        *_threading_headers(original),
        "Auto-Submitted: auto-replied",
        "X-Auto-Response-Suppress: All",
        "Content-Type: text/plain; charset=utf-8",
        "",
        text,
    )


def compose_delivery_status(original: StoredMessage, recipient: str, *, hard: bool, now: float) -> bytes:
    """Gmail's DSN (RFC 3464) for ``recipient``: "Failure" when ``hard``, else "Delay"."""
    boundary = "0000000000" + make_msgid(domain="x")[1:17].replace(".", "0")
    outcome = "Failure" if hard else "Delay"
    if hard:
        human = (
            f"Address not found\r\n\r\nYour message wasn't delivered to {recipient} because the "
            "address couldn't be found, or is unable to receive mail."
        )
        status = [
            "Action: failed",
            "Status: 5.1.1",
            f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown",
        ]
    else:
        human = (
            f"Message not delivered yet\r\n\r\nThere was a temporary problem delivering your message "
            f"to {recipient}. Gmail will retry for 46 more hours. You'll be notified if the delivery "
            "fails permanently."
        )
        status = ["Action: delayed", "Status: 4.4.1", "Diagnostic-Code: smtp; 421 4.4.1 Connection timed out"]
    original_headers = "\r\n".join(f"{name}: {value}" for name, value in original.envelope.headers)
    headers = [
        *_common(
            f"Mail Delivery Subsystem <{MAILER_DAEMON}>",
            original.owner,
            f"Delivery Status Notification ({outcome})",
            now,
            "mx.google.com",
        ),
        *_threading_headers(original),
        "Auto-Submitted: auto-replied",
    ]
    if hard:
        headers.append(f"X-Failed-Recipients: {recipient}")
    return _lines(
        *headers,
        f'Content-Type: multipart/report; boundary="{boundary}"; report-type=delivery-status',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=UTF-8",
        "",
        human,
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; googlemail.com",
        "",
        f"Final-Recipient: rfc822; {recipient}",
        *status,
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
        original_headers,
        "",
        f"--{boundary}--",
    )


def compose(
    kind: IncomingKind, original: StoredMessage, recipient: str, text: str | None, now: float
) -> bytes:
    """The answer of ``recipient`` (or of Gmail about it) to ``original``."""
    if kind is IncomingKind.REPLY:
        return compose_reply(original, recipient, text or "Thanks, sounds good. Let's talk.", now)
    if kind is IncomingKind.AUTO_REPLY:
        message = text or "I am out of the office until next week with limited access to email."
        return compose_auto_reply(original, recipient, message, now)
    return compose_delivery_status(original, recipient, hard=kind is IncomingKind.BOUNCE, now=now)


@dataclass(order=True, slots=True)
class _Due:
    at: float
    seq: int
    owner: str = field(compare=False)
    raw: bytes = field(compare=False)
    thread_id: str | None = field(compare=False)


class Inbound:
    """Mail waiting for its arrival time, delivered in order when the clock has passed it."""

    def __init__(self, post_office: PostOffice, clock: Callable[[], float]) -> None:
        self._post_office = post_office
        self._clock = clock
        self._due: list[_Due] = []
        self._seq = itertools.count()

    def clear(self) -> None:
        self._due.clear()

    def pending(self) -> int:
        return len(self._due)

    def deliver_now(self, owner: str, raw: bytes, thread_id: str | None) -> StoredMessage:
        self.deliver_due()  # what was due earlier arrives first
        envelope = read_received(raw, now=self._clock())
        return self._post_office.receive(owner, envelope, thread_id)

    def schedule(self, owner: str, raw: bytes, thread_id: str | None, at: float) -> None:
        heapq.heappush(self._due, _Due(at, next(self._seq), owner, raw, thread_id))

    def deliver_due(self) -> None:
        now = self._clock()
        while self._due and self._due[0].at <= now:
            due = heapq.heappop(self._due)
            self._post_office.receive(due.owner, read_received(due.raw, now=due.at), due.thread_id)

    def apply_rules(self, sent: StoredMessage, delay_seconds: float) -> None:
        """Schedule what the answering domains answer to a message just sent."""
        envelope = sent.envelope
        now = self._clock()
        for recipient in dict.fromkeys(
            address.lower() for address in (*envelope.to, *envelope.cc, *envelope.bcc)
        ):
            kind = RULE_DOMAINS.get(recipient.rpartition("@")[2])
            if kind is None:
                continue
            raw = compose(kind, sent, recipient, None, now + delay_seconds)
            thread = None if kind is IncomingKind.REPLY else sent.thread_id
            self.schedule(sent.owner, raw, thread, now + delay_seconds)
