"""The follow-up builder: the next step of every recipient whose previous step was sent.

It runs in the dispatcher's process (``Dispatcher.housekeeping``), never on the outcomes
consumer's hot path: applying ``EmailSent`` only marks the message sent, and a later pass finds
the recipients whose latest step is sent, who are not stopped, and whose campaign defines a next
step that is not built yet. A pass takes a batch of them (their recipient rows locked, ``SKIP
LOCKED``, so concurrent builders split the work and a stop waits for the build), renders each
step's template for them through templates' ``render-batch`` with the row's own fields (and its
unsubscribe link when the campaign's mail carries one), and inserts the messages, ``scheduled`` at
the previous step's ``sent_at`` (or the out-of-office answer to it, if one came) plus the step's
delay (``domain.follow_up_at``; the dispatcher holds them to the sending window); an auto-reply
that comes after the build moves the built follow-up instead (``stops.delay_recipient``). A row
that does not render becomes a ``failed`` message saying why, not a silent gap.
``(recipient_id, step)`` is unique and the insert skips a conflict, so a second builder that raced
past the locks inserts nothing.

A follow-up in the same thread carries the previous step's Gmail ``threadId``, ``In-Reply-To``
(the previous message's Message-ID), ``References`` (every Message-ID of the thread so far) and
"Re: " with the subject of the thread's first email (GMAIL_FACTS.md: all three are needed). A
Message-ID is the one Gmail stored (``messages.stored_message_id``, read back by the mailbox
watcher) where known, else the one we generated; a follow-up built before Gmail's was read is
rewritten when it is (``responses.apply_message_id_read``). A
follow-up in a new thread carries none of them and its own subject. Follow-ups carry no
attachments. A follow-up goes to the recipient row's To, Cc and Bcc, with its Reply-To, as its
first email did: a thread the first email shared with a colleague (Cc, Bcc) or pointed at a shared
inbox (Reply-To) stays so, and everyone who saw the first email sees the follow-up.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.campaigns.build import UNSUBSCRIBE_VARIABLE
from mailmerger_queue.compliance.tokens import Row, UnsubscribeTokens
from mailmerger_queue.dispatch.wakeup import announce_due
from mailmerger_queue.domain import State, rfc_message_id, subject_problem
from mailmerger_queue.errors import Invalid
from mailmerger_queue.models import Record, campaign_steps, campaigns, messages, recipients, transitions
from mailmerger_queue.sequences.domain import HOUR_SECONDS, follow_up_at, thread_subject
from mailmerger_queue.settings import QueueSettings
from mailmerger_shared.db import transaction
from mailmerger_shared.internal_api import RenderedRow
from mailmerger_shared.web.internal import InternalClient

log = logging.getLogger(__name__)
m, r, cp, st = messages, recipients, campaigns, campaign_steps

# Recipients owed their next step: latest step sent, not stopped, a next step defined and not built.
# Their recipient rows are locked (SKIP LOCKED): another builder takes other recipients.
_DUE = text(
    """
    SELECT m.campaign_id, m.recipient_id, m.step + 1 AS step,
           -- an out-of-office answer to the previous step restarts the delay (NULLs are ignored)
           greatest(m.sent_at, CASE WHEN m.response = 'auto_reply' THEN m.responded_at END) AS due_from
    FROM queue.messages m
    JOIN queue.campaigns c ON c.id = m.campaign_id AND c.state IN ('running', 'paused')
    JOIN queue.campaign_steps s ON s.campaign_id = m.campaign_id AND s.step = m.step + 1
    JOIN queue.recipients r ON r.id = m.recipient_id
    WHERE m.state = 'sent' AND m.campaign_id IS NOT NULL AND r.stopped_at IS NULL
      AND NOT EXISTS (
          SELECT 1 FROM queue.messages n WHERE n.recipient_id = m.recipient_id AND n.step = m.step + 1
      )
    ORDER BY m.sent_at, m.id
    LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
    """
)

# A campaign (``queue.campaigns`` of the enclosing statement) owes no recipient a step: the
# rule of ``_DUE``, for one campaign, negated.
NO_STEP_OWED = """
    NOT EXISTS (
        SELECT 1 FROM queue.messages m
        JOIN queue.campaign_steps s ON s.campaign_id = m.campaign_id AND s.step = m.step + 1
        JOIN queue.recipients r ON r.id = m.recipient_id
        WHERE m.campaign_id = queue.campaigns.id AND m.state = 'sent' AND r.stopped_at IS NULL
          AND NOT EXISTS (
              SELECT 1 FROM queue.messages n WHERE n.recipient_id = m.recipient_id AND n.step = m.step + 1
          )
    )
"""


# Columns a follow-up may leave NULL: every row of one INSERT names the same columns.
_CONTENT = (
    "subject",
    "html",
    "text",
    "thread_id",
    "in_reply_to",
    "reference_ids",
    "outcome_reason",
    "outcome_detail",
)


@dataclass(frozen=True)
class _Due:
    campaign_id: int
    recipient_id: int
    step: int
    # The previous step's sent_at, or the auto-reply to it if one came: the delay counts from here.
    due_from: datetime


@dataclass
class FollowUpBuilder:
    sessions: async_sessionmaker[AsyncSession]
    templates: TemplatesClient
    unsubscribe: UnsubscribeTokens
    message_id_domain: str
    batch_size: int = 200
    # Batches one ``build_due`` call takes at most (the rest waits for the next call).
    max_batches: int = 20
    # Real seconds one hour of a step's delay lasts (``MM_DISPATCH_FOLLOW_UP_HOUR_SECONDS``).
    hour_seconds: float = HOUR_SECONDS

    async def build_due(self, now: datetime) -> int:
        """Build every follow-up owed (up to ``max_batches`` batches); returns how many were built."""
        built = 0
        for _ in range(self.max_batches):
            async with transaction(self.sessions) as session:
                n, taken = await self.build_batch(session, now)
            built += n
            if taken < self.batch_size:
                break
        if built:
            log.info("follow-ups built", extra={"built": built})
        return built

    async def build_batch(self, session: AsyncSession, now: datetime) -> tuple[int, int]:
        """One batch in the caller's transaction: (messages inserted, recipients taken)."""
        due = [_Due(*row) for row in await session.execute(_DUE, {"limit": self.batch_size})]
        if not due:
            return 0, 0
        context = await _Context.load(session, due)
        values: list[dict[str, Any]] = []
        groups: dict[tuple[int, int], list[_Due]] = {}
        for item in due:
            groups.setdefault((item.campaign_id, item.step), []).append(item)
        for (campaign_id, step), items in groups.items():
            values += await self._render_step(context, campaign_id, step, items, now)
        ids = await _message_ids(session, len(values))
        for message_id, value in zip(ids, values, strict=True):
            value["id"] = message_id
            value["rfc_message_id"] = rfc_message_id(message_id, self.message_id_domain)
        inserted = (
            await session.execute(
                pg_insert(m)
                .values(values)
                .on_conflict_do_nothing(index_elements=[m.c.recipient_id, m.c.step])
                .returning(m.c.id, m.c.state, m.c.step)
            )
        ).all()
        if inserted:
            await session.execute(
                insert(transitions),
                [
                    {
                        "message_id": row.id,
                        "at": now,
                        "from_state": None,
                        "to_state": row.state,
                        "reason": f"follow-up (step {row.step}) built"
                        if row.state == State.SCHEDULED
                        else f"follow-up (step {row.step}) could not be rendered",
                        "attempt": 0,
                    }
                    for row in inserted
                ],
            )
            if any(row.state == State.SCHEDULED for row in inserted):
                await announce_due(session)
        return len(inserted), len(due)

    async def _render_step(
        self, context: _Context, campaign_id: int, step: int, items: list[_Due], now: datetime
    ) -> list[dict[str, Any]]:
        campaign = context.campaigns[campaign_id]
        definition = context.steps[(campaign_id, step)]
        rows = [context.recipients[item.recipient_id] for item in items]
        try:
            results: Sequence[RenderedRow | None] = await self.templates.render(
                campaign.user_id,
                definition.template_id,
                definition.template_version,
                [self._variables(campaign, row) for row in rows],
            )
            failure = None
        except Invalid as exc:  # the template version is gone: every row of the step fails
            results, failure = [None] * len(rows), exc.detail
        values = []
        for item, row, result in zip(items, rows, results, strict=True):
            value: dict[str, Any] = {
                "user_id": campaign.user_id,
                "account_id": campaign.account_id,
                "campaign_id": campaign_id,
                "recipient_id": item.recipient_id,
                "step": step,
                "attempt": 0,
                "to_addrs": [row.address],
                "cc_addrs": list(row.cc_addrs),
                "bcc_addrs": list(row.bcc_addrs),
                "reply_to_addrs": list(row.reply_to_addrs),
                "attachment_ids": [],
                "created_at": now,
                "updated_at": now,
                **dict.fromkeys(_CONTENT),
            }
            problem: tuple[str, str | None] | None = None if failure is None else ("render_error", failure)
            if result is not None and not result.ok:
                missing = f"missing: {', '.join(result.missing)}" if result.missing else None
                problem = (
                    ("missing_fields", missing)
                    if missing
                    else ("render_error", result.detail or result.error)
                )
            if result is not None and result.ok:
                thread = context.thread(item.recipient_id) if definition.same_thread else None
                subject = thread_subject(thread.first_subject) if thread else (result.subject or "")
                unsendable = subject_problem(subject)
                if unsendable is not None:
                    problem = ("invalid_subject", f"the rendered subject {unsendable}")
                else:
                    value |= {"subject": subject, "html": result.html, "text": result.text}
                    if thread is not None:
                        value |= {
                            "thread_id": thread.thread_id,
                            "in_reply_to": thread.references[-1],
                            "reference_ids": thread.references,
                        }
            if problem:
                value |= {
                    "state": State.FAILED.value,
                    "send_at": None,
                    "outcome_reason": problem[0],
                    "outcome_detail": problem[1],
                }
            else:
                value |= {
                    "state": State.SCHEDULED.value,
                    "send_at": max(
                        now,
                        follow_up_at(
                            item.due_from,
                            definition.delay_hours,
                            business_days=definition.business_days,
                            timezone=campaign.timezone,
                            weekdays=campaign.weekdays,
                            hour_seconds=self.hour_seconds,
                        ),
                    ),
                }
            values.append(value)
        return values

    def _variables(self, campaign: Record, row: Record) -> dict[str, Any]:
        fields: dict[str, Any] = dict(row.fields)
        if campaign.list_unsubscribe:
            fields[UNSUBSCRIBE_VARIABLE] = self.unsubscribe.url(Row(campaign.id, row.row_number))
        return fields


@dataclass(frozen=True)
class _Thread:
    thread_id: str | None
    first_subject: str
    references: list[str]  # Message-IDs of the thread's emails, oldest first


@dataclass
class _Context:
    campaigns: dict[int, Record]
    steps: dict[tuple[int, int], Record]
    recipients: dict[int, Record]
    sent: dict[int, list[Record]]  # a recipient's sent messages, by step

    @classmethod
    async def load(cls, session: AsyncSession, due: list[_Due]) -> _Context:
        campaign_ids = list({item.campaign_id for item in due})
        recipient_ids = [item.recipient_id for item in due]
        campaign_rows = await session.execute(select(cp).where(cp.c.id.in_(campaign_ids)))
        step_rows = await session.execute(select(st).where(st.c.campaign_id.in_(campaign_ids)))
        recipient_rows = await session.execute(
            select(
                r.c.id,
                r.c.row_number,
                r.c.address,
                r.c.fields,
                r.c.cc_addrs,
                r.c.bcc_addrs,
                r.c.reply_to_addrs,
            ).where(r.c.id.in_(recipient_ids))
        )
        sent_rows = await session.execute(
            select(
                m.c.recipient_id,
                m.c.step,
                # What Gmail stored when the watcher read it back (``MessageIdRead``), else ours.
                func.coalesce(m.c.stored_message_id, m.c.rfc_message_id).label("rfc_message_id"),
                m.c.thread_id,
                m.c.in_reply_to,
                func.coalesce(m.c.subject, r.c.subject).label("subject"),
            )
            .select_from(m.join(r, r.c.id == m.c.recipient_id))
            .where(m.c.recipient_id.in_(recipient_ids), m.c.state == State.SENT)
            .order_by(m.c.recipient_id, m.c.step)
        )
        sent: dict[int, list[Record]] = {}
        for row in sent_rows:
            sent.setdefault(row.recipient_id, []).append(row)
        return cls(
            campaigns={row.id: row for row in campaign_rows},
            steps={(row.campaign_id, row.step): row for row in step_rows},
            recipients={row.id: row for row in recipient_rows},
            sent=sent,
        )

    def thread(self, recipient_id: int) -> _Thread | None:
        """The thread the recipient's latest sent email is in: from the last email that began one
        (step 1, or a follow-up sent without In-Reply-To) to the latest."""
        earlier = self.sent.get(recipient_id, [])
        if not earlier:
            return None
        start = max(i for i, row in enumerate(earlier) if row.step == 1 or row.in_reply_to is None)
        chain = earlier[start:]
        return _Thread(
            thread_id=chain[-1].thread_id,
            first_subject=chain[0].subject or "",
            references=[row.rfc_message_id for row in chain],
        )


async def _message_ids(session: AsyncSession, n: int) -> list[int]:
    if n == 0:
        return []
    sequence = func.pg_get_serial_sequence("queue.messages", "id")
    rows = await session.execute(select(func.nextval(sequence)).select_from(func.generate_series(1, n)))
    return [int(x) for x in rows.scalars()]


@contextlib.asynccontextmanager
async def open_follow_ups(
    settings: QueueSettings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[FollowUpBuilder]:
    """A follow-up builder with a templates client of its own (the dispatcher's process has no
    other), closed on exit."""
    client = InternalClient(
        settings.templates_service.templates_url,
        caller="queue",
        token=settings.credential.queue_token,
        transport=transport,
    )
    try:
        yield FollowUpBuilder(
            sessions,
            TemplatesClient(client),
            UnsubscribeTokens.of(settings),
            settings.compose.message_id_domain,
            batch_size=settings.dispatch.batch_size,
            hour_seconds=settings.dispatch.follow_up_hour_seconds,
        )
    finally:
        await client.aclose()
