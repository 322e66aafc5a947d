"""The use case: deliver one ``SendEmail`` through Gmail, at most once, and say what happened.

Invariants:
- The message is claimed in the ledger (committed) before any Gmail call; a message already final
  is never sent again, only its outcome re-published.
- Each outcome is written to the ledger and staged in the outbox in one statement (batched with
  other deliveries' by ``LedgerWriter``), and only by the command that still holds the claim: no
  event is lost, none claims a send Gmail did not answer (or that the mailbox does not show).
- Every step that can end a delivery early returns a ``Settlement``; nothing is raised to stop one.
- An unanswered send is resent only once its claim settled *and* the mailbox was read and does
  not hold it; without a scope to read the mailbox the user decides (``EmailUnconfirmed``). When
  the user resends an unconfirmed message (a newer generation), the mailbox is still looked up
  first where a scope allows: a copy found there is recorded as sent, not sent twice.
- A message that cannot be built (``build_message`` raises only ``InvalidMessage``) fails at once
  with reason ``invalid_message`` and the builder's words, before Gmail is called: it never
  crashes the consumer, lingers ``scheduled`` or ends ``unconfirmed``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from mailmerger_sender.adapters.attachments import (
    AttachmentCorrupt,
    AttachmentMissing,
    Attachments,
    AttachmentUnavailable,
)
from mailmerger_sender.adapters.gmail import AnswerLost, GmailAnswer, RequestNotSent
from mailmerger_sender.adapters.tokens import (
    AccessTokens,
    AccountUnknown,
    ReconnectRequired,
    TokenUnavailable,
)
from mailmerger_sender.classify import (
    Accepted,
    AccountThrottled,
    Ambiguous,
    ClassifyPolicy,
    Outcome,
    Permanent,
    Transient,
    Unauthorized,
    backoff,
    classify_answer,
)
from mailmerger_sender.classify import ReconnectRequired as GrantCannotSend
from mailmerger_sender.ledger import settlement, states
from mailmerger_sender.ledger.states import Delivery
from mailmerger_sender.ledger.writer import DuplicateMessageId, LedgerWriter
from mailmerger_sender.limiter import AccountLimiter, google_account
from mailmerger_sender.mime import AttachmentBody, InvalidMessage, build_message, minimum_size
from mailmerger_sender.reconcile import Absent, Found, Inconclusive, Lookup, Mailbox, look_up, read_access
from mailmerger_sender.settings import DeliverySettings
from mailmerger_shared import contracts as c
from mailmerger_shared import metrics
from mailmerger_shared.header_text import clean_header_text
from mailmerger_shared.internal_api import GmailAccessToken

log = logging.getLogger(__name__)


class Gmail(Mailbox, Protocol):
    async def send(self, token: str, raw: bytes, *, thread_id: str | None, upload: bool) -> GmailAnswer: ...


@dataclass(frozen=True, kw_only=True)
class Ports:
    ledger: LedgerWriter
    gmail: Gmail
    tokens: AccessTokens
    attachments: Attachments
    limiter: AccountLimiter
    settings: DeliverySettings
    request_timeout: float  # of one Gmail call (GmailSettings.request_timeout)
    clock: Callable[[], datetime]
    rng: random.Random

    def settles_at(self, claimed_at: datetime) -> datetime:
        """After this, no Gmail call made under a claim taken at ``claimed_at`` can still land."""
        s = self.settings
        return claimed_at + timedelta(
            seconds=s.prepare_timeout_seconds + self.request_timeout + s.settle_margin_seconds
        )


async def deliver(command: c.SendEmail, envelope: c.Envelope, ports: Ports) -> None:
    """Handle one ``SendEmail`` (any number of times: redeliveries are answered from the ledger)."""
    now = ports.clock()
    try:
        claimed, held = await ports.ledger.claim(
            command, envelope.id, now=now, settles_at=ports.settles_at(now)
        )
    except DuplicateMessageId:
        detail = f"another email already has the Message-ID {command.rfc_message_id}"
        await ports.ledger.stage(settlement.failed(command, "duplicate_message_id", detail).events[0])
        return
    if not claimed:
        if held.state in states.FINAL:
            await ports.ledger.stage(settlement.final_event(held))
            return
        if held.state == states.DEFERRED:
            return  # this command, or a newer one, was already answered
        resolved = await _resolve(command, envelope, held, ports)
        if resolved is None:
            return
        held = resolved
    if held.uncertain_since is not None and ports.settings.reconcile:
        lookup = await _look_up(command, held, ports, since=held.uncertain_since)
        if isinstance(lookup, Found):
            found = settlement.sent(
                command, lookup.gmail_id, lookup.thread_id, ports.clock(), reconciled=True
            )
            await ports.ledger.record(held, found)
            metrics.record_delivery(found.state, "found_before_resend")
            return
    settled = await _attempt(command, held, ports)
    await ports.ledger.record(held, settled)
    metrics.record_delivery(settled.state, settled.reason)
    log.info("delivery settled", extra={"message_id": command.message_id, "outcome": settled.state})


async def _attempt(command: c.SendEmail, held: Delivery, ports: Ports) -> settlement.Settlement:
    """Prepare and send the claimed message; the outcome to record."""
    s = ports.settings
    try:
        if minimum_size(command) > s.max_message_bytes:
            return settlement.too_large(command, minimum_size(command), s.max_message_bytes)
        token = await _token(command, ports)
        if isinstance(token, settlement.Settlement):
            return token
        raw = build_message(
            command,
            # Google's profile name, which the user cannot fix: cleaned (auth cleans it on connect;
            # a name stored before that still sends), never a reason to refuse the message.
            sender_name=clean_header_text(token.display_name, max_length=200) if token.display_name else None,
            attachments=[
                AttachmentBody(ref.filename, ref.content_type, await ports.attachments.content(ref))
                for ref in command.attachments
            ],
            date=ports.clock(),
        )
        if len(raw) > s.max_message_bytes:
            return settlement.too_large(command, len(raw), s.max_message_bytes)
        hold = await ports.limiter.acquire(google_account(command.from_address))
        if hold is not None and hold.paused:
            return settlement.deferred(
                command, ports.clock() + hold.wait, "account_paused", "Gmail throttled the account"
            )
        if hold is not None:
            return settlement.deferred(
                command, ports.clock() + hold.wait, "rate_limited", "the account's send rate is spent"
            )
        outcome = await _send(command, held, token, raw, ports)
    except InvalidMessage as exc:
        if exc.__cause__ is not None:  # not a refusal but a builder bug: fail the message, show the bug
            log.error("building the message failed", exc_info=exc, extra={"message_id": command.message_id})
        return settlement.failed(command, "invalid_message", str(exc))
    except (AttachmentMissing, AttachmentCorrupt) as exc:
        reason = "attachment_missing" if isinstance(exc, AttachmentMissing) else "attachment_corrupt"
        return settlement.failed(command, reason, str(exc))
    except AttachmentUnavailable as exc:
        return settlement.deferred(command, _retry_at(command, ports), "attachment_unavailable", str(exc))
    if isinstance(outcome, settlement.Settlement):
        return outcome
    return await _outcome(command, held, outcome, ports)


async def _send(
    command: c.SendEmail, held: Delivery, token: GmailAccessToken, raw: bytes, ports: Ports
) -> Outcome | settlement.Settlement:
    """Call Gmail; a refused token is refreshed and the call repeated once. A settlement when the
    message is given back unsent (too late to start, or no fresh token)."""
    deadline = held.claimed_at + timedelta(seconds=ports.settings.prepare_timeout_seconds)
    for retry in (False, True):
        if ports.clock() > deadline:
            # Starting now could outlive the claim's settle time: give the message back instead.
            return settlement.deferred(
                command, _retry_at(command, ports), "prepare_timeout", "preparing took too long"
            )
        try:
            answer = await ports.gmail.send(
                token.access_token,
                raw,
                thread_id=command.thread_id,
                upload=len(raw) > ports.settings.upload_threshold_bytes,
            )
        except RequestNotSent as exc:
            return Transient("connection_failed", str(exc))
        except AnswerLost as exc:
            return Ambiguous(str(exc))
        outcome = classify_answer(
            answer.status, answer.body, answer.retry_after, now=ports.clock(), policy=_policy(ports.settings)
        )
        if not isinstance(outcome, Unauthorized) or retry:
            return outcome
        ports.tokens.invalidate(command.account_id, token.access_token)
        refreshed = await _token(command, ports)
        if isinstance(refreshed, settlement.Settlement):
            return refreshed
        token = refreshed
    raise AssertionError("unreachable: the second round always returns")


async def _outcome(
    command: c.SendEmail, held: Delivery, outcome: Outcome, ports: Ports
) -> settlement.Settlement:
    now = ports.clock()
    match outcome:
        case Accepted(gmail_id, thread_id):
            return settlement.sent(command, gmail_id, thread_id, now, reconciled=False)
        case Transient(reason, detail, not_before):
            return settlement.deferred(command, _retry_at(command, ports, not_before), reason, detail)
        case AccountThrottled(reason, detail, until):
            # The account's other sends would be refused too: hold them here (those on their way
            # now), and park the account in the queue (those not dispatched yet).
            await ports.limiter.pause(google_account(command.from_address), until - now)
            return settlement.deferred(command, until, reason, detail).announced_by(
                c.SenderThrottled(account_id=command.account_id, until=until, reason=reason)
            )
        case Unauthorized(detail):
            return settlement.reconnect(command, _reconnect_at(ports), "token_refused", detail)
        case GrantCannotSend(reason, detail):
            return settlement.reconnect(command, _reconnect_at(ports), reason, detail)
        case Permanent(reason, detail):
            return settlement.failed(command, reason, detail)
        case Ambiguous(detail):
            log.warning("send answer lost", extra={"message_id": command.message_id, "detail": detail})
            return await _after_lost_answer(command, held, detail, ports)
    raise AssertionError(f"unclassified outcome {outcome!r}")


async def _after_lost_answer(
    command: c.SendEmail, held: Delivery, detail: str, ports: Ports
) -> settlement.Settlement:
    if not ports.settings.reconcile:
        # Chaos-test mode: a lost answer is taken for a failure to send, so it will be resent.
        return settlement.deferred(command, _retry_at(command, ports), "answer_lost", detail)
    lookup = await _look_up(command, held, ports)
    if isinstance(lookup, Found):
        return settlement.sent(command, lookup.gmail_id, lookup.thread_id, ports.clock(), reconciled=True)
    if isinstance(lookup, Inconclusive) and not lookup.retryable:
        return settlement.unconfirmed(command, f"{detail}; {lookup.detail}")
    # Gmail may still act on the request until the claim settles: look again then.
    return settlement.awaiting_reconciliation(command, held.settles_at, detail)


async def _resolve(
    command: c.SendEmail, envelope: c.Envelope, held: Delivery, ports: Ports
) -> Delivery | None:
    """An unresolved claim met again: the row claimed anew to send, or None when answered here.

    The claim may still be alive in another process until it settles. A lookup may resolve it early
    (the message is in the mailbox); only a settled claim without a trace is sent again.
    """
    now = ports.clock()
    settled = now >= held.settles_at
    lookup: Lookup = await _look_up(command, held, ports) if ports.settings.reconcile else Absent()
    if isinstance(lookup, Found):
        await ports.ledger.record(
            held, settlement.sent(command, lookup.gmail_id, lookup.thread_id, now, reconciled=True)
        )
        return None
    if not settled:
        await ports.ledger.stage(
            settlement.deferral(
                command, held.settles_at, "delivery_unresolved", "an attempt may be in flight"
            )
        )
        return None
    if isinstance(lookup, Inconclusive):
        if lookup.retryable:
            await ports.ledger.stage(
                settlement.deferral(command, _retry_at(command, ports), "delivery_unresolved", lookup.detail)
            )
        else:
            await ports.ledger.record(
                held, settlement.unconfirmed(command, f"an earlier attempt may have sent it; {lookup.detail}")
            )
        return None
    settles_at = ports.settles_at(now)
    if not await ports.ledger.take_over(held, command, envelope.id, now=now, settles_at=settles_at):
        return None
    return dataclasses.replace(
        held, command_id=envelope.id, state=states.SENDING, claimed_at=now, settles_at=settles_at
    )


async def _look_up(
    command: c.SendEmail, held: Delivery, ports: Ports, *, since: datetime | None = None
) -> Lookup:
    """Is the message in the account's mailbox (sent since its claim, or since ``since``)?"""
    try:
        token = await ports.tokens.get(command.account_id)
    except (TokenUnavailable, ReconnectRequired) as exc:
        return Inconclusive(f"no access token to read the mailbox: {exc}", retryable=True)
    except AccountUnknown as exc:
        return Inconclusive(f"the account is gone: {exc}", retryable=False)
    return await look_up(
        ports.gmail,
        token.access_token,
        read_access(token.scopes),
        command.rfc_message_id,
        since=since or held.claimed_at,
        scan_limit=ports.settings.reconcile_scan_limit,
    )


async def _token(command: c.SendEmail, ports: Ports) -> GmailAccessToken | settlement.Settlement:
    """A fresh access token, or how the delivery ends without one."""
    try:
        return await ports.tokens.get(command.account_id)
    except ReconnectRequired as exc:
        return settlement.reconnect(command, _reconnect_at(ports), "reconnect_required", str(exc))
    except AccountUnknown as exc:
        return settlement.failed(command, "account_unknown", str(exc))
    except TokenUnavailable as exc:
        return settlement.deferred(command, _retry_at(command, ports), "token_unavailable", str(exc))


def _retry_at(command: c.SendEmail, ports: Ports, not_before: datetime | None = None) -> datetime:
    """Attempt-based backoff from now, or Gmail's own retry time when that is later."""
    s = ports.settings
    delay = backoff(command.attempt, base=s.backoff_base_seconds, cap=s.backoff_max_seconds, rng=ports.rng)
    retry_at = ports.clock() + delay
    return max(retry_at, not_before) if not_before is not None else retry_at


def _policy(settings: DeliverySettings) -> ClassifyPolicy:
    return ClassifyPolicy(
        mail_sending_pause=timedelta(seconds=settings.mail_sending_pause_seconds),
        daily_limit_pause=timedelta(seconds=settings.daily_limit_pause_seconds),
        rate_limit_pause=timedelta(seconds=settings.rate_limit_pause_seconds),
    )


def _reconnect_at(ports: Ports) -> datetime:
    return ports.clock() + timedelta(seconds=ports.settings.reconnect_retry_seconds)
