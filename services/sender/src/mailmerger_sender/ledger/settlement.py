"""How a delivery ends: the ledger state to write and the events to stage with it. Pure.

A ``Settlement`` is a plain value the delivery code returns (never raises): each step that can end
a delivery early returns one, and the caller returns it on unchanged.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from mailmerger_sender.ledger import states
from mailmerger_sender.ledger.states import Delivery
from mailmerger_shared import contracts as c


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a delivery: the ledger ``state``, the ledger columns written with it, and the
    ``events`` staged in the same statement (in order)."""

    state: str
    events: tuple[c.Event, ...]
    gmail_id: str | None = None
    thread_id: str | None = None
    sent_at: datetime | None = None
    reconciled: bool = False
    reason: str | None = None
    detail: str | None = None

    def announced_by(self, event: c.Event) -> Settlement:
        """This settlement with ``event`` staged before its own events."""
        return msgspec.structs.replace(self, events=(event, *self.events))


# The ledger columns a settlement writes with its state (``statements.record_all``).
COLUMNS = ("gmail_id", "thread_id", "sent_at", "reconciled", "reason", "detail")


def columns(settlement: Settlement) -> dict[str, object]:
    return {name: getattr(settlement, name) for name in COLUMNS}


def sent(
    command: c.SendEmail, gmail_id: str, thread_id: str, at: datetime, *, reconciled: bool
) -> Settlement:
    event = c.EmailSent(
        message_id=command.message_id,
        account_id=command.account_id,
        gmail_id=gmail_id,
        thread_id=thread_id,
        rfc_message_id=command.rfc_message_id,
        sent_at=at,
        reconciled=reconciled,
    )
    return Settlement(
        state=states.SENT,
        events=(event,),
        gmail_id=gmail_id,
        thread_id=thread_id,
        sent_at=at,
        reconciled=reconciled,
    )


def failed(command: c.SendEmail, reason: str, detail: str) -> Settlement:
    event = c.EmailFailed(
        message_id=command.message_id,
        account_id=command.account_id,
        reason=reason,
        detail=detail,
        generation=command.generation,
    )
    return Settlement(state=states.FAILED, events=(event,), reason=reason, detail=detail)


def unconfirmed(command: c.SendEmail, detail: str) -> Settlement:
    event = c.EmailUnconfirmed(
        message_id=command.message_id,
        account_id=command.account_id,
        rfc_message_id=command.rfc_message_id,
        detail=detail,
        generation=command.generation,
    )
    return Settlement(state=states.UNCONFIRMED, events=(event,), reason="unconfirmed", detail=detail)


def deferral(command: c.SendEmail, retry_at: datetime, reason: str, detail: str) -> c.EmailDeferred:
    return c.EmailDeferred(
        message_id=command.message_id,
        account_id=command.account_id,
        retry_at=retry_at,
        reason=reason,
        detail=detail,
        generation=command.generation,
    )


def deferred(command: c.SendEmail, retry_at: datetime, reason: str, detail: str) -> Settlement:
    return Settlement(
        state=states.DEFERRED,
        events=(deferral(command, retry_at, reason, detail),),
        reason=reason,
        detail=detail,
    )


def awaiting_reconciliation(command: c.SendEmail, settles_at: datetime, detail: str) -> Settlement:
    """The answer was lost and Gmail may still act on the request: look again once the claim settles."""
    reason = "awaiting_reconciliation"
    return Settlement(
        state=states.AMBIGUOUS,
        events=(deferral(command, settles_at, reason, detail),),
        reason=reason,
        detail=detail,
    )


def reconnect(command: c.SendEmail, retry_at: datetime, reason: str, detail: str) -> Settlement:
    """The account must be reconnected by its user: say so, and defer the message meanwhile."""
    return deferred(command, retry_at, reason, detail).announced_by(
        c.GmailReconnectRequired(user_id=command.user_id, account_id=command.account_id, reason=reason)
    )


def too_large(command: c.SendEmail, size: int, limit: int) -> Settlement:
    return failed(
        command,
        "message_too_large",
        f"the message is {size:,} bytes, above Gmail's limit of {limit:,} bytes; link large files instead",
    )


def final_event(row: Delivery) -> c.Event:
    """The outcome event a final row stands for (re-published when its command comes again)."""
    if row.state == states.SENT and row.gmail_id and row.thread_id and row.sent_at:
        return c.EmailSent(
            message_id=row.message_id,
            account_id=row.account_id,
            gmail_id=row.gmail_id,
            thread_id=row.thread_id,
            rfc_message_id=row.rfc_message_id,
            sent_at=row.sent_at,
            reconciled=row.reconciled,
        )
    if row.state == states.FAILED:
        return c.EmailFailed(
            message_id=row.message_id,
            account_id=row.account_id,
            reason=row.reason or "failed",
            detail=row.detail or "",
            generation=row.generation,
        )
    if row.state == states.UNCONFIRMED:
        return c.EmailUnconfirmed(
            message_id=row.message_id,
            account_id=row.account_id,
            rfc_message_id=row.rfc_message_id,
            detail=row.detail or "",
            generation=row.generation,
        )
    raise ValueError(f"delivery {row.message_id} ({row.state}) has no final outcome")
