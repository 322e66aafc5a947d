"""The events one incoming message of one of our threads makes, and their log lines.

Invariants:
- ``message_id`` of a response is our newest sent message of the thread sent before the response
  arrived (``CLOCK_SKEW`` allowed between Gmail's clock and ours): a follow-up sent later does not
  take over an earlier reply. A message that arrived before any of ours in the thread is not a
  response to us, and makes no event.
- A sending-limit bounce makes ``SenderThrottled`` (the account is parked for
  ``sending_limit_pause_seconds``), not a ``ResponseReceived``: the recipient did nothing wrong.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailmerger_sender.settings import WatcherSettings
from mailmerger_sender.watcher.classify import Ignored, IncomingMessage, Response, classify
from mailmerger_shared import contracts as c
from mailmerger_shared import metrics

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class OurMessage:
    """One of our sent messages in a thread."""

    message_id: int
    sent_at: datetime


def answer_events(
    message: IncomingMessage,
    account_email: str,
    ours: list[OurMessage],
    *,
    account_id: int,
    now: datetime,
    settings: WatcherSettings,
) -> list[c.Event]:
    """The events one incoming message of one of our threads makes (none if it is not an answer)."""
    verdict = classify(message, account_email)
    if isinstance(verdict, Ignored):
        return []
    target = _answered(ours, verdict)
    if target is None:
        return []
    if verdict.kind == "sending_limit":
        until = now + timedelta(seconds=settings.sending_limit_pause_seconds)
        return [c.SenderThrottled(account_id=account_id, until=until, reason="sending_limit_bounce")]
    return [
        c.ResponseReceived(
            message_id=target.message_id,
            account_id=account_id,
            kind=verdict.kind,
            gmail_id=message.gmail_id,
            from_address=verdict.from_address,
            received_at=verdict.received_at,
            failed_recipient=verdict.failed_recipient,
            detail=verdict.detail,
        )
    ]


def _answered(ours: list[OurMessage], response: Response) -> OurMessage | None:
    """Our newest message of the thread sent before ``response`` arrived."""
    before = [mine for mine in ours if mine.sent_at <= response.received_at + CLOCK_SKEW]
    return before[-1] if before else None


def announce(events: list[c.Event]) -> None:
    """Count and log what a pass staged (one line per response found)."""
    for event in events:
        if isinstance(event, c.ResponseReceived):
            metrics.WATCHER_RESPONSES.labels(event.kind).inc()
            log.info(
                "%s found for message %s of account %s",
                event.kind,
                event.message_id,
                event.account_id,
                extra={
                    "account_id": event.account_id,
                    "message_id": event.message_id,
                    "kind": event.kind,
                    "gmail_id": event.gmail_id,
                    "detail": event.detail,
                },
            )
        elif isinstance(event, c.SenderThrottled):
            metrics.WATCHER_RESPONSES.labels("sending_limit").inc()
            log.warning(
                "sending-limit bounce for account %s: parked until %s",
                event.account_id,
                event.until.isoformat(),
                extra={"account_id": event.account_id},
            )
