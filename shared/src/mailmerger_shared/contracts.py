"""Message contracts of the whole pipeline.

Every message is a frozen msgspec Struct whose tag is ``<name>.v<N>``. Commands are imperative
(``SendEmail``), events past tense (``EmailSent``). Within a version a field is never removed or
retyped; a breaking change is a new tag, and consumers accept both during a rollout.

The envelope (id, tag, occurred-at, correlation id, traceparent) travels in the AMQP properties
(see ``broker``), so a message body is only the payload.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar, Literal

import msgspec


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every command and event. ``TAG`` doubles as the routing key."""

    TAG: ClassVar[str]


class Command(Message, frozen=True, kw_only=True):
    """Asks exactly one consumer to do something."""


class Event(Message, frozen=True, kw_only=True):
    """States that something happened; any number of consumers may react."""


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """What every message carries besides its payload."""

    id: uuid.UUID
    tag: str
    occurred_at: datetime
    correlation_id: str | None = None
    traceparent: str | None = None

    @classmethod
    def new(cls, tag: str, *, correlation_id: str | None = None, traceparent: str | None = None) -> Envelope:
        return cls(
            id=uuid.uuid4(),
            tag=tag,
            occurred_at=datetime.now(UTC),
            correlation_id=correlation_id,
            traceparent=traceparent,
        )


# --- the send pipeline ------------------------------------------------------------------------


class AttachmentRef(msgspec.Struct, frozen=True, kw_only=True):
    """An attachment the sender fetches from object storage by key, verified by hash."""

    attachment_id: int
    object_key: str
    sha256: str
    filename: str
    content_type: str
    size: int


class SendEmail(Command, frozen=True, kw_only=True):
    """Deliver one message through the Gmail API of ``account_id``.

    ``message_id`` is the queue's ledger id; ``rfc_message_id`` is the deterministic
    ``Message-ID`` header, the same on every attempt, which makes delivery reconcilable.
    ``generation`` counts the user's resends (retrying a failed message, resending an
    unconfirmed one): the sender's ledger answers a command of an older generation from its final
    row, and treats a newer one as new work.
    """

    TAG: ClassVar[str] = "send_email.v1"
    message_id: int
    user_id: int
    account_id: int
    from_address: str
    from_name: str | None = None
    to: list[str]
    cc: list[str] = []
    bcc: list[str] = []
    # Where replies go (the Reply-To header); empty: to ``from_address``. Added within v1 with a
    # default: a command without it decodes as before.
    reply_to: list[str] = []
    subject: str
    html: str | None = None
    text: str | None = None
    attachments: list[AttachmentRef] = []
    rfc_message_id: str
    thread_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = []
    # RFC 8058 one-click unsubscribe (campaign mail): the https URL a POST unsubscribes with, and
    # a mailto: for readers without it. Both None: no List-Unsubscribe header.
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    attempt: int = 1
    generation: int = 0


class EmailSent(Event, frozen=True, kw_only=True):
    TAG: ClassVar[str] = "email_sent.v1"
    message_id: int
    account_id: int
    gmail_id: str
    thread_id: str
    rfc_message_id: str
    sent_at: datetime
    reconciled: bool = False  # found in the mailbox after an ambiguous outcome


class EmailFailed(Event, frozen=True, kw_only=True):
    TAG: ClassVar[str] = "email_failed.v1"
    message_id: int
    account_id: int
    reason: str  # Gmail's `reason` or ours, e.g. "failedPrecondition", "message_too_large"
    detail: str
    generation: int = 0  # of the command it answers: an older generation's outcome changes nothing


class EmailDeferred(Event, frozen=True, kw_only=True):
    TAG: ClassVar[str] = "email_deferred.v1"
    message_id: int
    account_id: int
    retry_at: datetime
    reason: str
    detail: str = ""
    generation: int = 0


class EmailUnconfirmed(Event, frozen=True, kw_only=True):
    """The request may have reached Gmail, and no read scope lets us check: a user decides."""

    TAG: ClassVar[str] = "email_unconfirmed.v1"
    message_id: int
    account_id: int
    rfc_message_id: str
    detail: str
    generation: int = 0


class SenderThrottled(Event, frozen=True, kw_only=True):
    """Gmail refused the account for a while: park the account, not the message."""

    TAG: ClassVar[str] = "sender_throttled.v1"
    account_id: int
    until: datetime
    reason: str


# --- what comes back: the mailbox watcher (accounts with gmail.metadata) ---------------------

# What arrived in the thread of a message we sent (GMAIL_FACTS.md 2.5): a person's reply, an
# auto-reply (RFC 3834, out of office), a delivery-status notification that failed for good
# (a hard bounce) or only delays (a soft one).
ResponseKind = Literal["reply", "auto_reply", "bounce", "delay"]


class ResponseReceived(Event, frozen=True, kw_only=True):
    """The mailbox watcher found incoming mail in the Gmail thread of one of our sent messages.

    ``message_id`` is the queue's id of our newest sent message in that thread; ``gmail_id`` (the
    incoming message's) makes the event idempotent: the watcher may find one message twice (a full
    resync), and the queue applies it once.
    """

    TAG: ClassVar[str] = "response_received.v1"
    message_id: int
    account_id: int
    kind: ResponseKind
    gmail_id: str
    from_address: str  # who wrote (the mailer daemon for a delivery-status notification)
    received_at: datetime
    failed_recipient: str | None = None  # a bounce's X-Failed-Recipients
    detail: str = ""  # why it was classified so, for people: e.g. the subject and the telling header


class MessageIdRead(Event, frozen=True, kw_only=True):
    """The Message-ID Gmail stored for a sent message, read back where a read scope allows.

    No Google page says whether Gmail keeps a caller-supplied Message-ID; follow-ups thread
    (``In-Reply-To``/``References``) on the one it stored.
    """

    TAG: ClassVar[str] = "message_id_read.v1"
    message_id: int
    account_id: int
    rfc_message_id: str


# --- accounts ---------------------------------------------------------------------------------


class UserDeleted(Event, frozen=True, kw_only=True):
    TAG: ClassVar[str] = "user_deleted.v1"
    user_id: int


class GmailConnected(Event, frozen=True, kw_only=True):
    TAG: ClassVar[str] = "gmail_connected.v1"
    user_id: int
    account_id: int
    email: str
    display_name: str | None = None
    scopes: list[str]


class GmailDisconnected(Event, frozen=True, kw_only=True):
    TAG: ClassVar[str] = "gmail_disconnected.v1"
    user_id: int
    account_id: int


class GmailReconnectRequired(Event, frozen=True, kw_only=True):
    TAG: ClassVar[str] = "gmail_reconnect_required.v1"
    user_id: int
    account_id: int
    reason: str


# --- storage ----------------------------------------------------------------------------------


class AttachmentDeleted(Event, frozen=True, kw_only=True):
    TAG: ClassVar[str] = "attachment_deleted.v1"
    user_id: int
    attachment_id: int


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TAG: cls
    for cls in (
        SendEmail,
        EmailSent,
        EmailFailed,
        EmailDeferred,
        EmailUnconfirmed,
        SenderThrottled,
        ResponseReceived,
        MessageIdRead,
        UserDeleted,
        GmailConnected,
        GmailDisconnected,
        GmailReconnectRequired,
        AttachmentDeleted,
    )
}


def encode(message: Message) -> bytes:
    return msgspec.json.encode(message)


def decode(tag: str, body: bytes) -> Message:
    """Decode a payload by its tag; an unknown tag or a malformed body raises ``msgspec`` errors."""
    try:
        message_type = MESSAGE_TYPES[tag]
    except KeyError:
        raise msgspec.ValidationError(f"unknown message tag {tag!r}") from None
    return msgspec.json.decode(body, type=message_type)
