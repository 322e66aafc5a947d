"""What a delivery ends with: the ledger state to write and the events to stage with it. Pure."""

from __future__ import annotations

from datetime import datetime

from mailmerger_sender import ledger
from mailmerger_shared import contracts as c


class Settlement(Exception):
    """The outcome of a delivery; raised to end one early from deep inside it."""

    def __init__(self, state: str, events: list[c.Event], **fields: object) -> None:
        super().__init__(state)
        self.state = state
        self.events = events
        self.fields = fields  # ledger columns written with the state


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
        ledger.SENT, [event], gmail_id=gmail_id, thread_id=thread_id, sent_at=at, reconciled=reconciled
    )


def failed(command: c.SendEmail, reason: str, detail: str) -> Settlement:
    event = c.EmailFailed(
        message_id=command.message_id,
        account_id=command.account_id,
        reason=reason,
        detail=detail,
        generation=command.generation,
    )
    return Settlement(ledger.FAILED, [event], reason=reason, detail=detail)


def unconfirmed(command: c.SendEmail, detail: str) -> Settlement:
    event = c.EmailUnconfirmed(
        message_id=command.message_id,
        account_id=command.account_id,
        rfc_message_id=command.rfc_message_id,
        detail=detail,
        generation=command.generation,
    )
    return Settlement(ledger.UNCONFIRMED, [event], reason="unconfirmed", detail=detail)


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
        ledger.DEFERRED, [deferral(command, retry_at, reason, detail)], reason=reason, detail=detail
    )


def reconnect(command: c.SendEmail, retry_at: datetime, reason: str, detail: str) -> Settlement:
    """The account must be reconnected by its user: say so, and defer the message meanwhile."""
    stop = deferred(command, retry_at, reason, detail)
    stop.events.insert(
        0, c.GmailReconnectRequired(user_id=command.user_id, account_id=command.account_id, reason=reason)
    )
    return stop


def too_large(command: c.SendEmail, size: int, limit: int) -> Settlement:
    return failed(
        command,
        "message_too_large",
        f"the message is {size:,} bytes, above Gmail's limit of {limit:,} bytes; link large files instead",
    )
