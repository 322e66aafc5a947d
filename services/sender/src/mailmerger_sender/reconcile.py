"""Finding out whether Gmail kept a message whose send had no answer, by its RFC Message-ID.

Which way depends on the scopes the account granted:
- a search scope (``gmail.readonly``, ``gmail.modify``, ``mail.google.com``) asks
  ``messages.list?q=rfc822msgid:<id>`` directly;
- ``gmail.metadata`` forbids ``q`` (Gmail applies its metadata limits whenever that scope is
  present), so the newest SENT messages are read with ``format=metadata`` down to the time of the
  claim, at most ``scan_limit`` of them;
- ``gmail.send`` alone cannot read the mailbox: nothing can be known.

A lookup answers ``Found``, ``Absent`` (the mailbox was read and the message is not in it) or
``Inconclusive``; only ``Absent`` may ever lead to sending again, and only once the claim settled.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

import msgspec

from mailmerger_sender.adapters.gmail import AnswerLost, GmailAnswer, RequestNotSent

_SCOPES = "https://www.googleapis.com/auth/"
_SEARCH_SCOPES = frozenset({"https://mail.google.com/", _SCOPES + "gmail.modify", _SCOPES + "gmail.readonly"})
_METADATA_SCOPE = _SCOPES + "gmail.metadata"
# Gmail stamps internalDate with its own clock: read a little further back than our claim.
_CLOCK_SKEW = timedelta(minutes=2)
# messages.get calls in flight at once during a metadata scan (Gmail limits concurrency per user).
_SCAN_CONCURRENCY = 8


class ReadAccess(enum.Enum):
    NONE = "none"
    METADATA = "metadata"
    SEARCH = "search"


def read_access(scopes: Iterable[str]) -> ReadAccess:
    granted = set(scopes)
    if _METADATA_SCOPE in granted:
        return ReadAccess.METADATA
    if granted & _SEARCH_SCOPES:
        return ReadAccess.SEARCH
    return ReadAccess.NONE


class Mailbox(Protocol):
    async def list_messages(
        self, token: str, *, query: str | None = None, label: str | None = None, page_token: str | None = None
    ) -> GmailAnswer: ...

    async def get_metadata(self, token: str, gmail_id: str, header: str) -> GmailAnswer: ...


@dataclass(frozen=True, slots=True)
class Found:
    gmail_id: str
    thread_id: str


@dataclass(frozen=True, slots=True)
class Absent:
    pass


@dataclass(frozen=True, slots=True)
class Inconclusive:
    """The mailbox could not be read (``retryable``: a later lookup may succeed) or not far enough."""

    detail: str
    retryable: bool


Lookup = Found | Absent | Inconclusive


class _Ref(msgspec.Struct):
    id: str
    threadId: str  # Gmail's JSON name


class _Page(msgspec.Struct):
    messages: list[_Ref] = []
    nextPageToken: str | None = None


class _Header(msgspec.Struct):
    name: str
    value: str


class _Payload(msgspec.Struct):
    headers: list[_Header] = []


class _Metadata(msgspec.Struct):
    id: str
    threadId: str
    internalDate: str = "0"
    payload: _Payload = msgspec.field(default_factory=_Payload)


class _Unreadable(Exception):
    pass


T = TypeVar("T")


async def look_up(
    mailbox: Mailbox,
    token: str,
    access: ReadAccess,
    rfc_message_id: str,
    *,
    since: datetime,
    scan_limit: int,
) -> Lookup:
    """Whether the account's mailbox holds ``rfc_message_id``, sent at or after ``since``."""
    wanted = rfc_message_id.strip().strip("<>")
    try:
        if access is ReadAccess.SEARCH:
            page = await _page(mailbox, token, query=f"rfc822msgid:{wanted}")
            return Found(page.messages[0].id, page.messages[0].threadId) if page.messages else Absent()
        if access is ReadAccess.METADATA:
            return await _scan_sent(mailbox, token, wanted, since - _CLOCK_SKEW, scan_limit)
    except (_Unreadable, RequestNotSent, AnswerLost) as exc:
        return Inconclusive(f"mailbox lookup failed: {exc}", retryable=True)
    return Inconclusive("the account granted no scope that can read its mailbox", retryable=False)


async def _scan_sent(mailbox: Mailbox, token: str, wanted: str, since: datetime, limit: int) -> Lookup:
    since_ms = int(since.timestamp() * 1000)
    scanned = 0
    page_token: str | None = None
    limiter = asyncio.Semaphore(_SCAN_CONCURRENCY)

    async def metadata(ref: _Ref) -> _Metadata:
        async with limiter:
            answer = await mailbox.get_metadata(token, ref.id, "Message-ID")
        return _decode(answer, _Metadata)

    while True:
        page = await _page(mailbox, token, label="SENT", page_token=page_token)
        batch = page.messages[: limit - scanned]
        scanned += len(batch)
        for message in await asyncio.gather(*(metadata(ref) for ref in batch)):
            if any(
                header.name.lower() == "message-id" and header.value.strip().strip("<>") == wanted
                for header in message.payload.headers
            ):
                return Found(message.id, message.threadId)
            if int(message.internalDate) < since_ms:
                # Newest first: everything further down is older than the claim.
                return Absent()
        if page.nextPageToken is None:
            return Absent()
        if scanned >= limit:
            return Inconclusive(
                f"not among the newest {limit} sent messages, and older ones remain", retryable=False
            )
        page_token = page.nextPageToken


async def _page(
    mailbox: Mailbox,
    token: str,
    *,
    query: str | None = None,
    label: str | None = None,
    page_token: str | None = None,
) -> _Page:
    return _decode(await mailbox.list_messages(token, query=query, label=label, page_token=page_token), _Page)


def _decode(answer: GmailAnswer, type_: type[T]) -> T:
    if answer.status != 200:
        raise _Unreadable(f"Gmail answered {answer.status}: {answer.body[:200]!r}")
    try:
        return msgspec.json.decode(answer.body, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _Unreadable(f"unreadable answer: {exc}") from exc
