"""Use cases that edit, delete or copy a whole campaign.

A draft's settings may change (``update_draft``); those its list was built with (unsubscribe
links, attachments column) only while no list is uploaded, since the rows were checked and rendered with
them. A campaign is deleted with everything of it in one statement: its rows, steps and messages
go by ``ON DELETE CASCADE``, and with the messages their attempts, transitions and responses.
Two things keep a finished campaign for a while first: Gmail's daily limit counts what it sent
in the last 24 hours (``dispatch.senders`` counts ``attempts``), and the one-click unsubscribe
links of its mail name its rows (``compliance.unsubscribe``), which must keep working for
``UNSUBSCRIBE_LINKS_KEPT`` after the last send. A clone is a new draft with the same settings
and steps, and, if asked, its list built again from the same rows (``clone_rows``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import schemas
from mailmerger_queue.campaigns import service
from mailmerger_queue.campaigns.build import RowIn
from mailmerger_queue.dispatch.pacing import DAY
from mailmerger_queue.domain import CampaignState, State
from mailmerger_queue.errors import Conflict, Invalid
from mailmerger_queue.models import Record, attempts, campaign_steps, campaigns, messages, recipients

cp = campaigns

# CAN-SPAM: an unsubscribe link must work for at least 30 days after the mail was sent.
UNSUBSCRIBE_LINKS_KEPT = timedelta(days=30)
DELETABLE = frozenset({CampaignState.DRAFT, CampaignState.COMPLETED, CampaignState.CANCELLED})
# Settings the rows of an uploaded list were checked and rendered with.
_BUILT_WITH = ("list_unsubscribe", "attachments_column")
# Columns a clone does not take from its source: its identity and what running it recorded.
_NOT_CLONED = frozenset(
    {
        "id",
        "name",
        "state",
        "created_at",
        "launched_at",
        "finished_at",
        "next_send_at",
        "consecutive_failures",
        "paused_reason",
    }
)
# Attempts that sent (or may have sent) a message: what Gmail's daily limit counts.
_COUNTS_AS_SENT = attempts.c.outcome.is_(None) | attempts.c.outcome.in_(["sent", "unconfirmed"])


def schedule_values(schedule: schemas.ScheduleIn) -> dict[str, Any]:
    """The ``campaigns`` columns of a schedule, checked as at creation."""
    service._check_schedule(schedule)  # the rule create applies
    return {
        "start_at": schedule.start_at,
        "timezone": schedule.timezone,
        "window_start": service._clock_time(schedule.window_start),
        "window_end": service._clock_time(schedule.window_end),
        "weekdays": sorted(set(schedule.weekdays)),
        "daily_cap": schedule.daily_cap,
        "domain_daily_cap": schedule.domain_daily_cap,
        "spacing_seconds": schedule.spacing_seconds,
        "jitter_seconds": schedule.jitter_seconds,
    }


async def update_draft(
    session: AsyncSession,
    user_id: int,
    campaign_id: int,
    data: schemas.UpdateCampaign,
) -> schemas.Campaign:
    """Change the given settings of a draft; 409 once launched."""
    row = await service.owned(session, user_id, campaign_id, lock=True)
    if row.state != CampaignState.DRAFT:
        raise Conflict(
            f"campaign {campaign_id} is {row.state}; only a draft's settings can change "
            f"(its follow-ups still can, with PUT /v1/campaigns/{campaign_id}/steps)"
        )
    given = {
        name: value for name in data.__struct_fields__ if (value := getattr(data, name)) is not msgspec.UNSET
    }
    if not given:
        raise Invalid(f"give at least one setting to change: {', '.join(data.__struct_fields__)}")
    values: dict[str, Any] = {k: v for k, v in given.items() if k != "schedule"}
    if isinstance(data.schedule, schemas.ScheduleIn):
        values.update(schedule_values(data.schedule))
    changed = [name for name in _BUILT_WITH if name in values and values[name] != getattr(row, name)]
    if changed:
        rows = (
            await session.execute(
                select(func.count()).select_from(recipients).where(recipients.c.campaign_id == campaign_id)
            )
        ).scalar_one()
        if rows:
            raise Conflict(
                f"campaign {campaign_id}'s list ({rows} rows) was checked and rendered with its "
                f"{' and '.join(changed)}; to change it, empty the list first (PUT "
                f'/v1/campaigns/{campaign_id}/recipients with {{"rows": []}}), then upload it again'
            )
    updated = (
        await session.execute(update(cp).where(cp.c.id == campaign_id).values(**values).returning(cp))
    ).one()
    return await service.described(session, updated)


async def delete_campaign(session: AsyncSession, user_id: int, campaign_id: int, *, now: datetime) -> None:
    """Delete a draft, completed or cancelled campaign with its rows, steps and messages."""
    row = await service.owned(session, user_id, campaign_id, lock=True)
    if row.state not in DELETABLE:
        raise Conflict(
            f"campaign {campaign_id} is {row.state}; cancel it first "
            f"(POST /v1/campaigns/{campaign_id}/cancel), then delete it"
        )
    in_flight = (
        await session.execute(
            select(func.count()).where(
                messages.c.campaign_id == campaign_id, messages.c.state == State.DISPATCHED.value
            )
        )
    ).scalar_one()
    if in_flight:
        raise Conflict(
            f"{in_flight} messages of campaign {campaign_id} are being sent right now; "
            "delete it once their outcome is known"
        )
    last_sent = (
        await session.execute(
            select(func.max(attempts.c.dispatched_at)).where(
                attempts.c.campaign_id == campaign_id, _COUNTS_AS_SENT
            )
        )
    ).scalar_one()
    if last_sent is not None:
        kept, why = (
            (UNSUBSCRIBE_LINKS_KEPT, "the unsubscribe links in its mail must keep working for 30 days")
            if row.list_unsubscribe
            else (DAY, "Gmail's daily limit counts what it sent in the last 24 hours")
        )
        if last_sent + kept > now:
            raise Conflict(
                f"campaign {campaign_id} sent mail at {last_sent.isoformat()} and {why}; "
                f"it can be deleted from {(last_sent + kept).isoformat()}"
            )
    await session.execute(delete(cp).where(cp.c.id == campaign_id, cp.c.user_id == user_id))


async def clone(
    session: AsyncSession, user_id: int, campaign_id: int, name: str | None, *, now: datetime
) -> tuple[Record, Record]:
    """A new draft with the source's settings and steps: (source, copy)."""
    source = await service.owned(session, user_id, campaign_id)
    values = {k: v for k, v in source._mapping.items() if k not in _NOT_CLONED}
    copy_name = name if name is not None else f"{source.name[:193]} (copy)"
    copy = (
        await session.execute(
            insert(cp)
            .values(**values, name=copy_name, state=CampaignState.DRAFT.value, created_at=now)
            .returning(cp)
        )
    ).one()
    step_columns = [column for column in campaign_steps.c if column.name != "campaign_id"]
    await session.execute(
        insert(campaign_steps).from_select(
            ["campaign_id", *(column.name for column in step_columns)],
            select(literal(copy.id), *step_columns).where(campaign_steps.c.campaign_id == campaign_id),
        )
    )
    return source, copy


async def clone_rows(session: AsyncSession, source: Record) -> AsyncIterator[RowIn]:
    """The source's list as it was uploaded, to build again for a copy: each row's fields and
    attachments (its rendering, problems and stop are the copy's own once built)."""
    found = await session.execute(
        select(
            recipients.c.row_number,
            recipients.c.fields,
            recipients.c.attachment_ids,
            recipients.c.problem,
            recipients.c.detail,
        )
        .where(recipients.c.campaign_id == source.id)
        .order_by(recipients.c.row_number)
    )
    for number, fields, attachment_ids, problem, detail in found.all():
        values = dict(fields)
        if source.attachments_column:
            values[source.attachments_column] = list(attachment_ids)
        yield RowIn(number, values, malformed=detail if problem == "malformed_row" else None)
