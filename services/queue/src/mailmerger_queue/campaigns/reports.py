"""What a user reads about a campaign: the validation report, a row's preview, the progress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import schemas, structs
from mailmerger_queue.campaigns.build import summary
from mailmerger_queue.campaigns.eta import Hold, Outlook, describe, estimate, sending_since
from mailmerger_queue.campaigns.service import owned
from mailmerger_queue.dispatch.pacing import Schedule
from mailmerger_queue.dispatch.senders import sends_leaving_the_day, sent_last_day
from mailmerger_queue.domain import PENDING, CampaignState, SenderState, State
from mailmerger_queue.errors import NotFound
from mailmerger_queue.models import Record, attempts, messages, recipients, responses, senders
from mailmerger_queue.sequences.domain import replies_unwatched
from mailmerger_queue.settings import DispatchSettings
from mailmerger_shared.pagination import decode_cursor, encode_cursor

r, m, rs = recipients, messages, responses
# The report's name in its cursors: a cursor of another list is refused here.
REPORT_CURSOR_KIND = "report"


async def report(
    session: AsyncSession, user_id: int, campaign_id: int, *, cursor: str | None, limit: int
) -> schemas.ValidationReport:
    """The build summary and the rows with problems, in row order, a page at a time (400 for a
    cursor this list did not hand out)."""
    await owned(session, user_id, campaign_id)
    conditions = [r.c.campaign_id == campaign_id, r.c.problem.is_not(None)]
    if cursor is not None:
        # Compared as a bigint: a cursor may carry any bigint, row numbers are integers.
        after = literal(decode_cursor(REPORT_CURSOR_KIND, cursor), BigInteger)
        conditions.append(r.c.row_number > after)
    rows = (
        await session.execute(
            select(r.c.row_number, r.c.address, r.c.problem, r.c.detail)
            .where(*conditions)
            .order_by(r.c.row_number)
            .limit(limit + 1)
        )
    ).all()
    problems = [structs.row_problem(x) for x in rows[:limit]]
    more = len(rows) > limit
    return schemas.ValidationReport(
        summary=await summary(session, campaign_id),
        problems=problems,
        next_cursor=encode_cursor(REPORT_CURSOR_KIND, problems[-1].row) if more else None,
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
    return structs.row_preview(row)


async def progress(
    session: AsyncSession, user_id: int, campaign_id: int, *, now: datetime, pacing: DispatchSettings
) -> schemas.Progress:
    """Counts per state, the current send rate, and when the rest should have gone (see ``campaigns.eta``)."""
    row = await owned(session, user_id, campaign_id)
    counted = await session.execute(
        select(m.c.state, func.count()).where(m.c.campaign_id == campaign_id).group_by(m.c.state)
    )
    counts = {state.value: 0 for state in State}
    counts.update({state: int(n) for state, n in counted})
    rate = await _current_rate(session, row, now)
    pending = sum(counts[state.value] for state in PENDING)
    built = await summary(session, campaign_id)
    stopped = await session.execute(
        select(r.c.stop_reason, func.count())
        .where(r.c.campaign_id == campaign_id, r.c.stop_reason.is_not(None))
        .group_by(r.c.stop_reason)
    )
    per_step: dict[str, dict[str, int]] = {}
    if row.launched_at is not None:
        stepped = await session.execute(
            select(m.c.step, m.c.state, func.count())
            .where(m.c.campaign_id == campaign_id)
            .group_by(m.c.step, m.c.state)
        )
        for step, state, n in stepped:
            per_step.setdefault(str(step), {})[state] = int(n)
    outlook = await _outlook(session, row, counts[State.SCHEDULED.value], pending, rate, now, pacing)
    responded = await response_counts(session, campaign_id)
    scopes = await session.scalar(select(senders.c.scopes).where(senders.c.account_id == row.account_id))
    unwatched = replies_unwatched(scopes, campaign_id)
    return schemas.Progress(
        campaign_id=campaign_id,
        state=row.state,
        total=sum(counts.values()),
        counts=counts,
        skipped=built.rows - built.valid if row.launched_at else 0,
        sent_per_minute=round(rate, 2),
        eta_seconds=outlook.eta_seconds,
        eta_at=outlook.eta_at,
        held_by=outlook.held_by,
        held_until=outlook.held_until,
        eta_detail=outlook.detail,
        stopped={reason: int(n) for reason, n in stopped},
        steps=per_step,
        replied=responded["reply"],
        bounced=responded["bounce"],
        auto_replied=responded["auto_reply"],
        replies_watched=unwatched is None,
        replies_watched_detail=unwatched,
    )


async def response_counts(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    """Recipients of the campaign with a reply, a (hard) bounce, an auto-reply (``responses``): a
    recipient counts once per kind, whichever of its emails was answered."""
    found = await session.execute(
        select(rs.c.kind, func.count(func.distinct(m.c.recipient_id)))
        .select_from(rs.join(m, m.c.id == rs.c.message_id))
        .where(m.c.campaign_id == campaign_id, rs.c.kind.in_(_COUNTED))
        .group_by(rs.c.kind)
    )
    counts = dict.fromkeys(_COUNTED, 0)
    counts.update({kind: int(n) for kind, n in found})
    return counts


_COUNTED = ("reply", "bounce", "auto_reply")


# The rate is read over this much of the recent past (less when sending began more recently).
RATE_WINDOW = timedelta(minutes=1)
_FINISHED = (CampaignState.COMPLETED, CampaignState.CANCELLED)


async def _current_rate(session: AsyncSession, campaign: Record, now: datetime) -> float:
    """Messages sent per minute over the last minute, or since sending began if that is later
    (the launch, the start time, the opening of today's window); a finished campaign's over the
    last minute of its run."""
    if campaign.launched_at is None:
        return 0.0
    end = now
    if campaign.state in _FINISHED:
        last_sent = await session.scalar(select(func.max(m.c.sent_at)).where(m.c.campaign_id == campaign.id))
        end = min(now, last_sent or now)
    began: list[datetime] = [end - RATE_WINDOW, campaign.launched_at]
    if campaign.start_at is not None:
        began.append(campaign.start_at)
    if campaign.state == CampaignState.RUNNING:
        began.append(sending_since(structs.schedule(campaign), end) or end - RATE_WINDOW)
    since = max(began)
    sent = await session.scalar(
        select(func.count()).where(m.c.campaign_id == campaign.id, m.c.sent_at > since, m.c.sent_at <= end)
    )
    # At least a second: the first messages of a run go within one dispatcher tick.
    minutes: float = max(end - since, timedelta(seconds=1)) / timedelta(minutes=1)
    return int(sent or 0) / minutes


@dataclass(frozen=True)
class _Outlook:
    eta_seconds: float | None
    eta_at: datetime | None = None
    held_by: str | None = None
    held_until: datetime | None = None
    detail: str | None = None


async def _outlook(
    session: AsyncSession,
    campaign: Record,
    scheduled: int,
    pending: int,
    rate: float,
    now: datetime,
    pacing: DispatchSettings,
) -> _Outlook:
    """When the campaign's pending messages should have gone, and what holds them up."""
    if campaign.state == CampaignState.DRAFT:
        return _Outlook(None, detail="the campaign is not launched yet")
    if pending == 0:
        return _Outlook(0.0, eta_at=now)
    if campaign.state == CampaignState.PAUSED:
        return _Outlook(None, held_by="paused", detail="the campaign is paused; resume it to send the rest")
    if campaign.state == CampaignState.CANCELLED or scheduled == 0:
        return _Outlook(0.0, eta_at=now)  # only messages already on their way to Gmail
    account = (
        await session.execute(select(senders).where(senders.c.account_id == campaign.account_id))
    ).one()
    if account.state != SenderState.CONNECTED:
        return _Outlook(
            None,
            held_by="account",
            detail=f"{account.email} must be reconnected before the rest can be sent",
        )
    schedule = structs.schedule(campaign)
    planned = min(account.per_minute_limit, pacing.per_minute_limit) * pacing.pace_fraction
    if schedule.spacing_seconds > 0:
        planned = min(planned, 60 / schedule.spacing_seconds)
    start: datetime = now
    start_hold: Hold | None = None
    if campaign.start_at is not None and campaign.start_at > start:
        start, start_hold = campaign.start_at, "start_at"
    if account.parked_until is not None and account.parked_until > start:
        start, start_hold = account.parked_until, "account_parked"
    sent_last_day_count = (await sent_last_day(session, [account.account_id], now)).get(account.account_id, 0)
    allowance = account.daily_limit - sent_last_day_count
    eta = estimate(
        Outlook(
            now=now,
            remaining=scheduled,
            per_minute=min(rate, planned) if rate > 0 else planned,
            schedule=schedule,
            start=start,
            start_hold=start_hold,
            sent_today=await _sent_today(session, campaign.id, schedule, now) if schedule.daily_cap else 0,
            account_allowance=allowance,
            account_releases=tuple(
                await sends_leaving_the_day(session, account.account_id, now) if scheduled > allowance else ()
            ),
        )
    )
    return _Outlook(
        eta_seconds=round(max(0.0, (eta.finishes_at - now).total_seconds()), 1),
        eta_at=eta.finishes_at,
        held_by=eta.held_by,
        held_until=eta.held_until,
        detail=describe(eta, scheduled, schedule.timezone),
    )


async def _sent_today(session: AsyncSession, campaign_id: int, schedule: Schedule, now: datetime) -> int:
    """What counts against the campaign's daily cap today: as the dispatcher counts it, its
    dispatches since local midnight that were not deferred or failed."""
    a = attempts
    count = await session.scalar(
        select(func.count()).where(
            a.c.campaign_id == campaign_id,
            a.c.dispatched_at >= schedule.local_day_start(now),
            a.c.outcome.is_distinct_from("deferred"),
            a.c.outcome.is_distinct_from("failed"),
        )
    )
    return int(count or 0)
