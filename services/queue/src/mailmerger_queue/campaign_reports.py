"""What a user reads about a campaign: the validation report, a row's preview, the progress."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import schemas
from mailmerger_queue.campaign_build import summary
from mailmerger_queue.campaigns import owned
from mailmerger_queue.domain import PENDING, State
from mailmerger_queue.models import messages, recipients
from mailmerger_shared.web.problems import NotFound

r, m = recipients, messages


async def report(
    session: AsyncSession, user_id: int, campaign_id: int, *, cursor: int | None, limit: int
) -> schemas.ValidationReport:
    """The build summary and the rows with problems, in row order, a page at a time."""
    await owned(session, user_id, campaign_id)
    conditions = [r.c.campaign_id == campaign_id, r.c.problem.is_not(None)]
    if cursor is not None:
        conditions.append(r.c.row_number > cursor)
    rows = (
        await session.execute(
            select(r.c.row_number, r.c.address, r.c.problem, r.c.detail)
            .where(*conditions)
            .order_by(r.c.row_number)
            .limit(limit + 1)
        )
    ).all()
    problems = [
        schemas.RowProblem(row=x.row_number, address=x.address, problem=x.problem, detail=x.detail)
        for x in rows[:limit]
    ]
    more = len(rows) > limit
    return schemas.ValidationReport(
        summary=await summary(session, campaign_id),
        problems=problems,
        next_cursor=str(problems[-1].row) if more else None,
    )


async def preview(
    session: AsyncSession, user_id: int, campaign_id: int, row_number: int
) -> schemas.RowPreview:
    await owned(session, user_id, campaign_id)
    row = (
        await session.execute(select(r).where(r.c.campaign_id == campaign_id, r.c.row_number == row_number))
    ).first()
    if row is None:
        raise NotFound(f"campaign {campaign_id} has no row {row_number}")
    return schemas.RowPreview(
        row=row.row_number,
        address=row.address,
        fields=row.fields,
        attachment_ids=list(row.attachment_ids),
        problem=row.problem,
        detail=row.detail,
        subject=row.subject,
        html=row.html,
        text=row.text,
    )


async def progress(
    session: AsyncSession, user_id: int, campaign_id: int, *, now: datetime
) -> schemas.Progress:
    """Counts per state, the send rate over the last 10 minutes, and the time left at that rate."""
    row = await owned(session, user_id, campaign_id)
    counted = await session.execute(
        select(m.c.state, func.count()).where(m.c.campaign_id == campaign_id).group_by(m.c.state)
    )
    counts = {state.value: 0 for state in State}
    counts.update({state: int(n) for state, n in counted})
    window = timedelta(minutes=10)
    recent = (
        await session.execute(
            select(func.count()).where(m.c.campaign_id == campaign_id, m.c.sent_at > now - window)
        )
    ).scalar_one()
    rate = recent / (window.total_seconds() / 60)
    pending = sum(counts[state.value] for state in PENDING)
    built = await summary(session, campaign_id)
    eta: float | None = None
    if pending == 0:
        eta = 0.0
    elif rate > 0:
        eta = round(pending / rate * 60, 1)
    return schemas.Progress(
        campaign_id=campaign_id,
        state=row.state,
        total=sum(counts.values()),
        counts=counts,
        skipped=built.rows - built.valid if row.launched_at else 0,
        sent_per_minute=round(rate, 2),
        eta_seconds=eta,
    )
