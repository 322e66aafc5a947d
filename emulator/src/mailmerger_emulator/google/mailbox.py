"""Every accepted message, in one mailbox per user, with the indexes the Gmail API needs.

Invariants:
- Message ids are 16 hex digits, unique across mailboxes and increasing with time, like Gmail's;
  a thread's id is the id of its first message.
- Looking a message up by id, by RFC Message-ID or by thread is a dict access: storing a message
  never scans the messages already stored.
- A sent message joins an existing thread only as the Gmail guide says: the request names the
  thread, In-Reply-To/References cite a message of it, and the subject matches (ignoring Re:/Fwd:).
  A received one joins the thread of a message it cites with a matching subject, or the thread
  it is delivered into (Gmail's own delivery reports, auto-replies).
- Every stored message is one ``messagesAdded`` history record; history ids come from one
  increasing counter, so each mailbox's ids increase too.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from mailmerger_emulator.google.content import Content, read_content
from mailmerger_emulator.google.mime import Envelope

SENT = "SENT"
INBOX = "INBOX"
UNREAD = "UNREAD"
# What a received message carries (a message sent by the owner keeps SENT only).
RECEIVED_LABELS = (INBOX, UNREAD)
_REPLY_PREFIXES = re.compile(r"^\s*(?:(?:re|fwd?|aw|wg)(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def thread_subject(subject: str) -> str:
    """The part of a subject that must match for a reply to join a thread."""
    return _SPACE.sub(" ", _REPLY_PREFIXES.sub("", subject)).strip().casefold()


@dataclass(slots=True, kw_only=True)
class StoredMessage:
    id: str
    thread_id: str
    owner: str
    # Position in the owner's mailbox: the order messages were accepted in.
    position: int
    history_id: int
    internal_date_ms: int
    envelope: Envelope
    label_ids: tuple[str, ...] = (SENT,)
    _content: Content | None = None

    def content(self) -> Content:
        if self._content is None:
            self._content = read_content(self.envelope.raw)
        return self._content


@dataclass(slots=True, kw_only=True)
class Thread:
    id: str
    subject_key: str
    rfc_message_ids: set[str] = field(default_factory=set)
    messages: list[StoredMessage] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryRecord:
    """One ``messagesAdded`` change of a mailbox (the only kind the emulator records)."""

    id: int
    at: float
    message: StoredMessage


@dataclass(slots=True)
class Mailbox:
    owner: str
    messages: list[StoredMessage] = field(default_factory=list)
    by_id: dict[str, StoredMessage] = field(default_factory=dict)
    by_rfc_message_id: dict[str, list[StoredMessage]] = field(default_factory=dict)
    threads: dict[str, Thread] = field(default_factory=dict)
    # Changes in order, oldest first; records older than the retention are dropped by
    # ``PostOffice.history`` and ``expired_through`` remembers the newest id dropped.
    history: list[HistoryRecord] = field(default_factory=list)
    expired_through: int = 0


def rfc_message_id_key(message_id: str) -> str:
    """Gmail's ``rfc822msgid:`` matches with or without angle brackets."""
    return message_id.strip().strip("<>")


class PostOffice:
    """All mailboxes. ``clear`` empties them but keeps the id sequence, so ids are never reused."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last_id = 0
        self._history_id = 1000
        self._mailboxes: dict[str, Mailbox] = {}
        self._by_id: dict[str, StoredMessage] = {}
        self._copies: Counter[str] = Counter()

    def clear(self) -> None:
        self._mailboxes.clear()
        self._by_id.clear()
        self._copies.clear()

    @property
    def history_id(self) -> int:
        return self._history_id

    def mailbox(self, owner: str) -> Mailbox:
        box = self._mailboxes.get(owner)
        if box is None:
            box = self._mailboxes[owner] = Mailbox(owner)
        return box

    def deliver(self, owner: str, envelope: Envelope, requested_thread_id: str | None) -> StoredMessage:
        """Store a message the owner sent (labelled SENT)."""
        box = self.mailbox(owner)
        return self._store(box, envelope, self._thread_for(box, envelope, requested_thread_id), (SENT,))

    def receive(self, owner: str, envelope: Envelope, thread_id: str | None = None) -> StoredMessage:
        """Store a message that arrived for the owner (INBOX, UNREAD).

        ``thread_id`` puts it in that thread whatever its subject (Gmail threads its own delivery
        reports and the auto-replies it receives with the original, GMAIL_FACTS.md 2.5); without
        one it joins the thread of a message it cites whose subject matches, as a reply does.
        """
        box = self.mailbox(owner)
        thread = box.threads.get(thread_id) if thread_id else None
        if thread is None:
            thread = self._cited_thread(box, envelope)
        return self._store(box, envelope, thread, RECEIVED_LABELS)

    def _cited_thread(self, box: Mailbox, envelope: Envelope) -> Thread | None:
        subject_key = thread_subject(envelope.subject)
        for reference in reversed(envelope.referenced_ids):
            for cited in box.by_rfc_message_id.get(rfc_message_id_key(reference), []):
                thread = box.threads[cited.thread_id]
                if thread.subject_key == subject_key:
                    return thread
        return None

    def _store(
        self, box: Mailbox, envelope: Envelope, thread: Thread | None, labels: tuple[str, ...]
    ) -> StoredMessage:
        owner = box.owner
        now = self._clock()
        self._last_id = max(self._last_id + 1, int(now * 1000) << 20)
        message_id = f"{self._last_id:016x}"
        if thread is None:
            thread = box.threads[message_id] = Thread(
                id=message_id, subject_key=thread_subject(envelope.subject)
            )
        thread.rfc_message_ids.add(envelope.message_id)
        self._history_id += 1
        stored = StoredMessage(
            id=message_id,
            thread_id=thread.id,
            owner=owner,
            position=len(box.messages),
            history_id=self._history_id,
            internal_date_ms=int(now * 1000),
            envelope=envelope,
            label_ids=labels,
        )
        thread.messages.append(stored)
        box.history.append(HistoryRecord(id=self._history_id, at=now, message=stored))
        box.messages.append(stored)
        box.by_id[message_id] = stored
        key = rfc_message_id_key(envelope.message_id)
        box.by_rfc_message_id.setdefault(key, []).append(stored)
        self._by_id[message_id] = stored
        self._copies[key] += 1
        return stored

    def _thread_for(self, box: Mailbox, envelope: Envelope, requested: str | None) -> Thread | None:
        if not requested:
            return None
        thread = box.threads.get(requested)
        if thread is None or thread.subject_key != thread_subject(envelope.subject):
            return None
        if not any(reference in thread.rfc_message_ids for reference in envelope.referenced_ids):
            return None
        return thread

    def history(self, owner: str, retention_seconds: float) -> Mailbox:
        """The owner's mailbox with the records older than the retention dropped."""
        box = self.mailbox(owner)
        horizon = self._clock() - retention_seconds
        expired = 0
        while expired < len(box.history) and box.history[expired].at < horizon:
            expired += 1
        if expired:
            box.expired_through = box.history[expired - 1].id
            del box.history[:expired]
        return box

    def find(self, message_id: str) -> StoredMessage | None:
        return self._by_id.get(message_id)

    def messages(self, owner: str | None = None) -> list[StoredMessage]:
        """Messages in the order they were accepted, of one mailbox or of all."""
        if owner is not None:
            box = self._mailboxes.get(owner)
            return list(box.messages) if box else []
        return list(self._by_id.values())

    def total(self) -> int:
        """How many messages all mailboxes hold (constant time: progress probes poll this)."""
        return len(self._by_id)

    def copies_by_rfc_message_id(self, owner: str | None = None) -> dict[str, int]:
        """How many stored messages carry each RFC Message-ID (brackets removed)."""
        if owner is None:
            return dict(self._copies)
        box = self._mailboxes.get(owner)
        return {key: len(found) for key, found in box.by_rfc_message_id.items()} if box else {}
