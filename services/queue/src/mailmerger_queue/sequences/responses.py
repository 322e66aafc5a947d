"""Applying what the sender's mailbox watcher found: responses to our mail, and stored Message-IDs.

``ResponseReceived`` (one incoming Gmail message in the thread of one of ours) is applied once per
``(account_id, gmail_id)``: the ``responses`` primary key makes a redelivery or a full resync of the
watcher a no-op, so the consumer records no envelope. Its effect, in the event's one transaction:

* every kind is recorded, and ``messages.response`` keeps the strongest so far (bounce > reply >
  auto_reply > delay: a later weaker one changes nothing there);
* ``reply``: the recipient's sequence stops (``replied``) when the campaign's ``stop_on_reply``;
  with ``stop_on_domain_reply``, so does every recipient of the campaign at the replier's domain,
  unless it is a consumer domain (``MM_DISPATCH_CONSUMER_DOMAINS``: two gmail.com recipients are
  not colleagues);
* ``auto_reply``: the recipient's next follow-up waits its step's delay from now; nothing stops;
* ``bounce`` (hard): the sequence stops (``bounced``) and the failed address joins the user's
  suppression list (``hard_bounce``), so no later campaign mails it either;
* ``delay`` (a soft bounce): recorded only, Gmail keeps trying;
* ``message.replied`` / ``.bounced`` / ``.auto_replied`` webhook events are staged with it.

``MessageIdRead`` records the Message-ID Gmail stored; follow-ups thread on it (``builder``), and
the ones already built but not dispatched have their ``In-Reply-To``/``References`` rewritten. It is
idempotent by itself.

An event naming a message the queue does not have (purged with its user, another account's) is
skipped with a log line and acknowledged: redelivering it would never find one.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import false, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.compliance import suppression
from mailmerger_queue.errors import Invalid
from mailmerger_queue.models import campaigns, messages, recipients, responses
from mailmerger_queue.sequences import stops
from mailmerger_queue.sequences.domain import RESPONSE_STRENGTH, StopReason, addr_spec, email_domain
from mailmerger_queue.settings import DispatchSettings
from mailmerger_queue.webhooks.events import stage_message_events
from mailmerger_shared import contracts as c

log = logging.getLogger(__name__)
m, r, cp, rs = messages, recipients, campaigns, responses

# The webhook event each kind stages (a soft bounce stages none: nothing happened yet).
WEBHOOK_EVENTS = {
    "reply": "message.replied",
    "bounce": "message.bounced",
    "auto_reply": "message.auto_replied",
}
_STRENGTHS = [kind for kind, _ in sorted(RESPONSE_STRENGTH.items(), key=lambda item: item[1])]

# The message keeps its strongest response: a weaker one (or an equal one) leaves it as it is.
_KEEP_STRONGEST = text(
    """
    UPDATE queue.messages
    SET response = CAST(:kind AS text), responded_at = CAST(:received_at AS timestamptz)
    WHERE id = :message_id
      AND coalesce(array_position(CAST(:strengths AS text[]), response), 0)
          < array_position(CAST(:strengths AS text[]), CAST(:kind AS text))
    """
)


async def apply_response(
    session: AsyncSession, event: c.ResponseReceived, now: datetime, settings: DispatchSettings
) -> bool:
    """Apply one response in the caller's transaction; whether it was new (False: already applied,
    or its message is unknown)."""
    message = (
        await session.execute(
            select(
                m.c.id,
                m.c.user_id,
                m.c.campaign_id,
                m.c.recipient_id,
                m.c.to_addrs,
                cp.c.stop_on_reply,
                cp.c.stop_on_domain_reply,
            )
            .select_from(m.outerjoin(cp, cp.c.id == m.c.campaign_id))
            .where(m.c.id == event.message_id, m.c.account_id == event.account_id)
        )
    ).first()
    if message is None:
        log.info(
            "response to an unknown message skipped",
            extra={"message_id": event.message_id, "account_id": event.account_id, "kind": event.kind},
        )
        return False
    recorded = await session.execute(
        pg_insert(rs)
        .values(
            account_id=event.account_id,
            gmail_id=event.gmail_id,
            message_id=event.message_id,
            kind=event.kind,
            from_address=event.from_address,
            failed_recipient=event.failed_recipient,
            received_at=event.received_at,
            detail=event.detail,
            recorded_at=now,
        )
        .on_conflict_do_nothing(index_elements=[rs.c.account_id, rs.c.gmail_id])
        .returning(rs.c.gmail_id)
    )
    if recorded.first() is None:
        return False  # applied before: a redelivery, or the watcher found it again
    await session.execute(
        _KEEP_STRONGEST,
        {
            "kind": event.kind,
            "received_at": event.received_at,
            "message_id": event.message_id,
            "strengths": _STRENGTHS,
        },
    )
    recipient_id = message.recipient_id
    if event.kind == "reply" and message.campaign_id is not None:
        await _replied(
            session,
            event,
            message.campaign_id,
            recipient_id,
            stop_on_reply=message.stop_on_reply,
            stop_on_domain=message.stop_on_domain_reply,
            now=now,
            settings=settings,
        )
    elif event.kind == "auto_reply" and recipient_id is not None:
        await stops.delay_recipient(session, recipient_id, now, hour_seconds=settings.follow_up_hour_seconds)
    elif event.kind == "bounce":
        failed = event.failed_recipient or (message.to_addrs[0] if message.to_addrs else None)
        if recipient_id is not None:
            detail = f"bounced: {failed}" + (f" ({event.detail})" if event.detail else "")
            await stops.stop_recipient(session, recipient_id, StopReason.BOUNCED, now, detail=detail)
        if failed:
            await _suppress(session, message.user_id, failed, now)
    webhook = WEBHOOK_EVENTS.get(event.kind)
    if webhook is not None:
        extra = {
            "kind": event.kind,
            "from": event.from_address,
            "received_at": event.received_at.isoformat().replace("+00:00", "Z"),
        }
        await stage_message_events(session, webhook, [event.message_id], now, extra=extra)
    return True


async def _replied(
    session: AsyncSession,
    event: c.ResponseReceived,
    campaign_id: int,
    recipient_id: int | None,
    *,
    stop_on_reply: bool,
    stop_on_domain: bool,
    now: datetime,
    settings: DispatchSettings,
) -> None:
    who = event.from_address
    domain = email_domain(who)
    consumer = {each.lower() for each in settings.consumer_domains}
    # A consumer domain's users are not one organisation: two gmail.com recipients are not colleagues.
    colleagues = (
        (r.c.campaign_id == campaign_id) & (func.lower(func.split_part(r.c.address, "@", 2)) == domain)
        if stop_on_domain and domain and domain not in consumer
        else None
    )
    if colleagues is not None:
        # Every recipient this reply may stop, locked in id order (as ``stop_recipients`` takes
        # them) before any is stopped: two replies from one domain wait for each other, never deadlock.
        mine = r.c.id == recipient_id if recipient_id is not None else false()
        await session.execute(select(r.c.id).where(colleagues | mine).order_by(r.c.id).with_for_update(of=r))
    if stop_on_reply and recipient_id is not None:
        detail = f"{who} replied" + (f": {event.detail}" if event.detail else "")
        await stops.stop_recipient(session, recipient_id, StopReason.REPLIED, now, detail=detail)
    if colleagues is not None:
        await stops.stop_recipients(
            session,
            colleagues,
            StopReason.REPLIED,
            now,
            detail=f"{who} at {domain} replied (the campaign stops on a reply from the same domain)",
        )


async def _suppress(session: AsyncSession, user_id: int, address: str, now: datetime) -> None:
    try:
        entry = suppression.address_entry(addr_spec(address))
    except Invalid:
        log.warning("a bounce named no usable address; nothing suppressed", extra={"address": address[:320]})
        return
    await suppression.add(
        session, user_id, entry, reason=suppression.Reason.HARD_BOUNCE, source="bounce", now=now
    )


# A recipient's follow-ups built but not dispatched, still threading on an older Message-ID of
# the message: re-pointed at the one Gmail stored (In-Reply-To and References alike).
_REWRITE_FOLLOW_UPS = text(
    """
    UPDATE queue.messages
    SET in_reply_to = CASE WHEN in_reply_to = ANY(CAST(:old AS text[])) THEN :new ELSE in_reply_to END,
        reference_ids = ARRAY(
            SELECT CASE WHEN ref = ANY(CAST(:old AS text[])) THEN CAST(:new AS text) ELSE ref END
            FROM unnest(reference_ids) WITH ORDINALITY AS t(ref, n) ORDER BY n
        ),
        updated_at = :now
    WHERE recipient_id = :recipient_id AND state = 'scheduled' AND step > :step
      AND (in_reply_to = ANY(CAST(:old AS text[])) OR reference_ids && CAST(:old AS text[]))
    RETURNING id
    """
)


async def apply_message_id_read(session: AsyncSession, event: c.MessageIdRead, now: datetime) -> int:
    """Record the Message-ID Gmail stored and re-thread the recipient's scheduled follow-ups on it;
    how many follow-ups were rewritten."""
    row = (
        await session.execute(
            select(m.c.recipient_id, m.c.step, m.c.rfc_message_id, m.c.stored_message_id)
            .where(m.c.id == event.message_id, m.c.account_id == event.account_id)
            .with_for_update(of=m)
        )
    ).first()
    if row is None:
        log.info(
            "stored Message-ID of an unknown message skipped",
            extra={"message_id": event.message_id, "account_id": event.account_id},
        )
        return 0
    stored = event.rfc_message_id
    if row.stored_message_id != stored:
        # ``updated_at`` stays: the redispatch sweep reads it, and this changes no delivery.
        await session.execute(m.update().where(m.c.id == event.message_id).values(stored_message_id=stored))
    old = [each for each in {row.rfc_message_id, row.stored_message_id} if each and each != stored]
    if row.recipient_id is None or not old:
        return 0
    rewritten = await session.execute(
        _REWRITE_FOLLOW_UPS,
        {"old": old, "new": stored, "recipient_id": row.recipient_id, "step": row.step, "now": now},
    )
    return len(rewritten.all())
