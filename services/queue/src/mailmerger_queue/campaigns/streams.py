"""Long answers about a campaign, streamed: per-recipient results as CSV, progress as events.

Both read in short transactions of their own (the request's transaction has ended by the time a
streamed body is sent), a page or a snapshot at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
from litestar.response import ServerSentEventMessage
from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_queue.campaigns import reports as campaign_reports
from mailmerger_queue.domain import CampaignState
from mailmerger_queue.models import messages, recipients
from mailmerger_queue.settings import DispatchSettings
from mailmerger_shared.csv_export import csv_line
from mailmerger_shared.db import transaction

# One line per email of a row (step 1, then its follow-ups), or one for a row that has none.
_HEADER = [
    "row",
    "address",
    "state",
    "problem",
    "sent_at",
    "gmail_id",
    "reason",
    "detail",
    "step",
    "stop_reason",
    "response",  # the strongest the mailbox watcher found: bounce, reply, auto_reply, delay
    "responded_at",
]
_PAGE = 1000
_FINISHED = {CampaignState.COMPLETED.value, CampaignState.CANCELLED.value}


async def results_csv(sessions: async_sessionmaker[AsyncSession], campaign_id: int) -> AsyncIterator[bytes]:
    """Every row of the list with what happened to it; rows left out at launch are ``skipped``.

    Addresses and details quote recipients' data: ``csv_line`` keeps a spreadsheet from running
    any of it as a formula.
    """
    r, m = recipients, messages
    yield csv_line(_HEADER)
    after = (0, 0)
    step = func.coalesce(m.c.step, 0)
    while True:
        async with transaction(sessions) as session:
            page = (
                await session.execute(
                    select(
                        r.c.row_number,
                        r.c.address,
                        r.c.problem,
                        m.c.state,
                        m.c.sent_at,
                        m.c.gmail_id,
                        m.c.outcome_reason,
                        m.c.outcome_detail,
                        r.c.detail,
                        step.label("step"),
                        r.c.stop_reason,
                        m.c.response,
                        m.c.responded_at,
                    )
                    .select_from(r.outerjoin(m, m.c.recipient_id == r.c.id))
                    .where(r.c.campaign_id == campaign_id, tuple_(r.c.row_number, step) > tuple_(*after))
                    .order_by(r.c.row_number, step)
                    .limit(_PAGE)
                )
            ).all()
        if not page:
            return
        yield b"".join(
            csv_line(
                [
                    row.row_number,
                    row.address,
                    row.state or ("skipped" if row.problem else "not launched"),
                    row.problem,
                    row.sent_at.isoformat() if row.sent_at else None,
                    row.gmail_id,
                    row.outcome_reason,
                    row.outcome_detail or row.detail,
                    row.step or None,
                    row.stop_reason,
                    row.response,
                    row.responded_at.isoformat() if row.responded_at else None,
                ]
            )
            for row in page
        )
        after = (page[-1].row_number, page[-1].step)


async def progress_events(
    sessions: async_sessionmaker[AsyncSession],
    user_id: int,
    campaign_id: int,
    *,
    interval: float,
    pacing: DispatchSettings,
) -> AsyncIterator[ServerSentEventMessage]:
    """A ``progress`` event every ``interval`` seconds, until the campaign is completed or cancelled."""
    while True:
        async with transaction(sessions) as session:
            snapshot = await campaign_reports.progress(
                session, user_id, campaign_id, now=datetime.now(UTC), pacing=pacing
            )
        yield ServerSentEventMessage(event="progress", data=msgspec.json.encode(snapshot).decode())
        if snapshot.state in _FINISHED:
            return
        await asyncio.sleep(interval)
