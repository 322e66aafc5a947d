"""Reading a mailbox within a unit budget: Gmail's read answers, decoded, and its refusals, sorted.

Invariants:
- Every call is paid for before it is made (``Budget.spend``) and counted in
  ``mailmerger_watcher_quota_units_total`` by method; a pass never spends more than its budget,
  except that an incremental pass always takes its first step (one history page and the messages
  of its first record), so that no budget is too small to make progress.
- A non-200 answer becomes a ``Refusal`` whose ``kind`` says what the pass does: ``unauthorized``
  (drop the token, retry next pass), ``no_scope`` (the account cannot be read: send-only),
  ``throttled`` (back off until ``not_before``), ``not_found`` (a full sync, or skip the message),
  ``error`` (anything else: back off, state ``error``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal, Protocol, TypeVar

import msgspec

from mailmerger_sender import classify as answers
from mailmerger_sender.adapters.gmail import GmailAnswer
from mailmerger_sender.settings import WatcherSettings
from mailmerger_sender.watcher.classify import IncomingMessage
from mailmerger_shared import metrics

T = TypeVar("T")
Method = Literal["history.list", "messages.list", "messages.get", "getProfile"]
RefusalKind = Literal["unauthorized", "no_scope", "throttled", "not_found", "error"]

# Pauses for refusals that name no time: Gmail's per-user minute refills within a minute.
_THROTTLE_PAUSE = timedelta(seconds=60)
_POLICY = answers.ClassifyPolicy(
    mail_sending_pause=_THROTTLE_PAUSE, daily_limit_pause=timedelta(hours=1), rate_limit_pause=_THROTTLE_PAUSE
)
# The headers a pass reads of an incoming message: what ``classify`` decides on.
RESPONSE_HEADERS = (
    "From",
    "Subject",
    "Auto-Submitted",
    "X-Autoreply",
    "X-Autorespond",
    "Precedence",
    "Content-Type",
    "X-Failed-Recipients",
    "In-Reply-To",
)


class MailboxReader(Protocol):
    """The Gmail calls the watcher makes (``adapters.gmail.HttpGmail``)."""

    async def get_profile(self, token: str) -> GmailAnswer: ...

    async def list_history(
        self,
        token: str,
        start_history_id: int,
        *,
        label: str | None = "INBOX",
        history_types: str = "messageAdded",
        page_token: str | None = None,
    ) -> GmailAnswer: ...

    async def list_messages(
        self, token: str, *, query: str | None = None, label: str | None = None, page_token: str | None = None
    ) -> GmailAnswer: ...

    async def get_metadata_headers(
        self, token: str, gmail_id: str, headers: Sequence[str]
    ) -> GmailAnswer: ...


class Refusal(Exception):
    def __init__(self, kind: RefusalKind, detail: str, not_before: datetime | None = None) -> None:
        super().__init__(detail)
        self.kind: RefusalKind = kind
        self.detail = detail
        self.not_before = not_before


class Budget:
    """The units one pass may spend (GMAIL_FACTS 2.2 costs, ``messages.get`` configurable)."""

    def __init__(self, settings: WatcherSettings) -> None:
        self.limit = settings.units_per_pass
        self.spent = 0
        self.costs: dict[Method, int] = {
            "history.list": 2,
            "messages.list": 5,
            "messages.get": settings.message_get_units,
            "getProfile": 1,
        }

    def affords(self, method: Method, count: int = 1) -> bool:
        return self.spent + self.costs[method] * count <= self.limit

    def spend(self, method: Method) -> None:
        cost = self.costs[method]
        self.spent += cost
        metrics.WATCHER_QUOTA_UNITS.labels(method).inc(cost)

    @property
    def left(self) -> int:
        return max(self.limit - self.spent, 0)


# --- Gmail's answers ---------------------------------------------------------------------------


class _Profile(msgspec.Struct):
    historyId: str  # Gmail's JSON name (a uint64 as a string)


class MessageRef(msgspec.Struct, frozen=True):
    id: str
    threadId: str
    labelIds: list[str] = []


class MessageList(msgspec.Struct):
    messages: list[MessageRef] = []
    nextPageToken: str | None = None


class _Added(msgspec.Struct):
    message: MessageRef


class HistoryRecord(msgspec.Struct):
    id: str
    messagesAdded: list[_Added] = []

    def added(self) -> list[MessageRef]:
        return [added.message for added in self.messagesAdded]


class HistoryPage(msgspec.Struct):
    historyId: str
    history: list[HistoryRecord] = []
    nextPageToken: str | None = None


class _Header(msgspec.Struct):
    name: str = ""
    value: str = ""


class _Payload(msgspec.Struct):
    headers: list[_Header] = []


class _Metadata(msgspec.Struct):
    id: str
    threadId: str
    labelIds: list[str] = []
    snippet: str = ""
    internalDate: str = "0"
    payload: _Payload = msgspec.field(default_factory=_Payload)


def profile_history_id(answer: GmailAnswer, now: datetime) -> int:
    return history_id(decode(answer, _Profile, now).historyId)


def history_id(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise Refusal("error", f"Gmail answered an unreadable historyId {value[:40]!r}") from None


def incoming(answer: GmailAnswer, now: datetime) -> IncomingMessage:
    found = decode(answer, _Metadata, now)
    try:
        internal_date = int(found.internalDate)
    except ValueError:
        internal_date = int(now.timestamp() * 1000)
    return IncomingMessage(
        gmail_id=found.id,
        thread_id=found.threadId,
        label_ids=tuple(found.labelIds),
        headers=[(header.name, header.value) for header in found.payload.headers],
        internal_date_ms=internal_date,
        snippet=found.snippet,
    )


def header(answer: GmailAnswer, name: str, now: datetime) -> str | None:
    """The first ``name`` header of a ``messages.get format=metadata`` answer."""
    wanted = name.lower()
    found = decode(answer, _Metadata, now)
    return next((h.value for h in found.payload.headers if h.name.lower() == wanted), None)


def decode(answer: GmailAnswer, type_: type[T], now: datetime) -> T:
    if answer.status != 200:
        raise refusal(answer, now)
    try:
        return msgspec.json.decode(answer.body, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Refusal("error", f"unreadable Gmail answer: {exc}") from exc


def refusal(answer: GmailAnswer, now: datetime) -> Refusal:
    """What a non-200 answer means for the pass (``classify.classify_answer`` reads Gmail's reasons)."""
    if answer.status == 404:
        return Refusal("not_found", "404 notFound")
    outcome = answers.classify_answer(answer.status, answer.body, answer.retry_after, now=now, policy=_POLICY)
    if isinstance(outcome, answers.Unauthorized):
        return Refusal("unauthorized", outcome.detail)
    if isinstance(outcome, answers.ReconnectRequired) or b"ACCESS_TOKEN_SCOPE_INSUFFICIENT" in answer.body:
        return Refusal("no_scope", getattr(outcome, "detail", "insufficient scope"))
    if isinstance(outcome, answers.AccountThrottled):
        return Refusal("throttled", outcome.detail, outcome.until)
    if isinstance(outcome, answers.Transient) and (answer.status in (403, 429) or "Limit" in outcome.reason):
        return Refusal("throttled", outcome.detail, outcome.not_before or now + _THROTTLE_PAUSE)
    detail = getattr(outcome, "detail", f"Gmail answered {answer.status}")
    return Refusal("error", detail)
