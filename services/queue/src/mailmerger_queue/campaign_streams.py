"""Long answers about a campaign, streamed: per-recipient results as CSV, progress as events.

Both read in short transactions of their own (the request's transaction has ended by the time a
streamed body is sent), a page or a snapshot at a time.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
from litestar.response import ServerSentEventMessage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_queue import campaign_reports
from mailmerger_queue.domain import CampaignState
from mailmerger_queue.models import messages, recipients
from mailmerger_shared.db import transaction

_HEADER = ["row", "address", "state", "problem", "sent_at", "gmail_id", "reason", "detail"]
_PAGE = 1000
_FINISHED = {CampaignState.COMPLETED.value, CampaignState.CANCELLED.value}


async def results_csv(sessions: async_sessionmaker[AsyncSession], campaign_id: int) -> AsyncIterator[bytes]:
    """Every row of the list with what happened to it; rows left out at launch are ``skipped``."""
    r, m = recipients, messages
    yield _line(_HEADER)
    after = 0
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
                    )
                    .select_from(r.outerjoin(m, m.c.recipient_id == r.c.id))
                    .where(r.c.campaign_id == campaign_id, r.c.row_number > after)
                    .order_by(r.c.row_number)
                    .limit(_PAGE)
                )
            ).all()
        if not page:
            return
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in page:
            writer.writerow(
                [
                    row.row_number,
                    row.address,
                    row.state or ("skipped" if row.problem else "not launched"),
                    row.problem or "",
                    row.sent_at.isoformat() if row.sent_at else "",
                    row.gmail_id or "",
                    row.outcome_reason or "",
                    row.outcome_detail or row.detail or "",
                ]
            )
        yield buffer.getvalue().encode()
        after = page[-1].row_number


def _line(cells: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)
    return buffer.getvalue().encode()


async def progress_events(
    sessions: async_sessionmaker[AsyncSession], user_id: int, campaign_id: int, *, interval: float
) -> AsyncIterator[ServerSentEventMessage]:
    """A ``progress`` event every ``interval`` seconds, until the campaign is completed or cancelled."""
    while True:
        async with transaction(sessions) as session:
            snapshot = await campaign_reports.progress(session, user_id, campaign_id, now=datetime.now(UTC))
        yield ServerSentEventMessage(event="progress", data=msgspec.json.encode(snapshot).decode())
        if snapshot.state in _FINISHED:
            return
        await asyncio.sleep(interval)
