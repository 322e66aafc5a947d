"""Use cases of campaigns: create, read, launch, pause, resume, cancel, retry, report, progress.

A campaign is built (its list uploaded, checked and rendered) while it is a draft, and launched
once: launching turns every valid row into a scheduled message in one statement. From then on
the dispatcher paces it; pausing only makes the dispatcher skip it, so nothing in flight is
touched and nothing is sent twice on resume.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, any_, exists, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import ledger, schemas, structs
from mailmerger_queue.adapters.storage import StorageClient
from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.campaigns.build import summary
from mailmerger_queue.dispatch import lifecycle
from mailmerger_queue.dispatch.wakeup import announce_due
from mailmerger_queue.domain import (
    CAMPAIGN_CANCELLABLE,
    CAMPAIGN_LAUNCHABLE,
    CAMPAIGN_PAUSABLE,
    CAMPAIGN_RESUMABLE,
    CampaignState,
    Resolution,
    State,
)
from mailmerger_queue.emails import message_size
from mailmerger_queue.emails.service import resolve_attachments, sending_account
from mailmerger_queue.errors import Conflict, Invalid, NotFound
from mailmerger_queue.models import Record, attachments, campaigns, messages, recipients, senders
from mailmerger_queue.sequences import steps as sequence_steps
from mailmerger_queue.sequences import stops
from mailmerger_queue.sequences.domain import StopReason
from mailmerger_queue.webhooks.events import stage_event
from mailmerger_shared.context import current_correlation_id

cp, r, m = campaigns, recipients, messages

_LAUNCH = text(
    """
    WITH numbered AS (
        SELECT nextval(pg_get_serial_sequence('queue.messages', 'id')) AS id, r.id AS recipient_id,
               r.address, r.attachment_ids, r.cc_addrs, r.bcc_addrs, r.reply_to_addrs
        FROM queue.recipients r WHERE r.campaign_id = :campaign_id AND r.problem IS NULL
    ), created AS (
        INSERT INTO queue.messages (
            id, user_id, account_id, campaign_id, recipient_id, state, send_at, attempt, rfc_message_id,
            to_addrs, cc_addrs, bcc_addrs, reply_to_addrs, attachment_ids, correlation_id, created_at,
            updated_at)
        SELECT n.id, :user_id, :account_id, :campaign_id, n.recipient_id, 'scheduled', :send_at, 0,
               '<mm.' || n.id || '.' || substr(replace(gen_random_uuid()::text, '-', ''), 1, 16)
                   || '@' || :domain || '>',
               ARRAY[n.address], n.cc_addrs, n.bcc_addrs, n.reply_to_addrs,
               CAST(:attachment_ids AS bigint[]) || n.attachment_ids,
               :correlation_id, :now, :now
        FROM numbered n
        RETURNING id
    )
    INSERT INTO queue.transitions (message_id, at, from_state, to_state, reason, attempt)
    SELECT id, :now, NULL, 'scheduled', 'campaign launched', 0 FROM created
    """
)


def _clock_time(value: str | None) -> time | None:
    return None if value is None else time.fromisoformat(value)


def _check_schedule(schedule: schemas.ScheduleIn) -> None:
    try:
        ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(f"schedule.timezone: {schedule.timezone!r} is not an IANA time zone") from exc
    if (schedule.window_start is None) != (schedule.window_end is None):
        raise Invalid("schedule: give both window_start and window_end, or neither")
    if schedule.window_start is not None and schedule.window_start == schedule.window_end:
        raise Invalid("schedule: window_start and window_end must differ")
    if not schedule.weekdays:
        raise Invalid("schedule.weekdays: name at least one day (1 = Monday … 7 = Sunday)")
    if schedule.jitter_seconds > schedule.spacing_seconds:
        raise Invalid("schedule.jitter_seconds may not exceed spacing_seconds")


async def create(
    session: AsyncSession,
    *,
    user_id: int,
    data: schemas.CreateCampaign,
    templates: TemplatesClient,
    storage: StorageClient,
    now: datetime,
    max_message_bytes: int,
) -> schemas.Campaign:
    _check_schedule(data.schedule)
    account = await sending_account(session, user_id, data.account_id)
    if await templates.version(user_id, data.template_id, data.template_version) is None:
        raise Invalid(f"template {data.template_id} has no version {data.template_version}")
    await sequence_steps.check_templates(templates, user_id, data.steps)
    attachment_ids = await resolve_attachments(session, storage, user_id, data.attachment_ids)
    await message_size.require_attachments_fit(session, attachment_ids, limit=max_message_bytes)
    schedule = data.schedule
    row = (
        await session.execute(
            insert(cp)
            .values(
                user_id=user_id,
                account_id=data.account_id,
                name=data.name,
                template_id=data.template_id,
                template_version=data.template_version,
                state=CampaignState.DRAFT.value,
                address_column=data.address_column,
                attachments_column=data.attachments_column,
                cc_column=data.cc_column,
                bcc_column=data.bcc_column,
                reply_to_column=data.reply_to_column,
                attachment_ids=attachment_ids,
                start_at=schedule.start_at,
                timezone=schedule.timezone,
                window_start=_clock_time(schedule.window_start),
                window_end=_clock_time(schedule.window_end),
                weekdays=sorted(set(schedule.weekdays)),
                daily_cap=schedule.daily_cap,
                domain_daily_cap=schedule.domain_daily_cap,
                spacing_seconds=schedule.spacing_seconds,
                jitter_seconds=schedule.jitter_seconds,
                list_unsubscribe=data.list_unsubscribe,
                stop_on_reply=data.stop_on_reply,
                stop_on_domain_reply=data.stop_on_domain_reply,
                created_at=now,
            )
            .returning(cp)
        )
    ).one()
    follow_ups = await sequence_steps.create(session, row.id, data.steps)
    return structs.campaign(row, follow_ups, account.scopes)


async def described(session: AsyncSession, row: Record) -> schemas.Campaign:
    """The campaign of a ``campaigns`` row, with its follow-ups."""
    scopes = (await account_scopes(session, [row.account_id])).get(row.account_id)
    return structs.campaign(row, await sequence_steps.of_campaign(session, row.id), scopes)


async def account_scopes(session: AsyncSession, account_ids: list[int]) -> dict[int, list[str]]:
    """The OAuth scopes each of the accounts granted (whether its replies can be watched)."""
    if not account_ids:
        return {}
    rows = await session.execute(
        select(senders.c.account_id, senders.c.scopes).where(senders.c.account_id.in_(set(account_ids)))
    )
    return {account_id: list(scopes) for account_id, scopes in rows}


async def owned(session: AsyncSession, user_id: int, campaign_id: int, *, lock: bool = False) -> Record:
    query = select(cp).where(cp.c.id == campaign_id, cp.c.user_id == user_id)
    row = (await session.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise NotFound(f"campaign {campaign_id} does not exist")
    return row


async def list_campaigns(session: AsyncSession, user_id: int) -> list[schemas.Campaign]:
    rows = (await session.execute(select(cp).where(cp.c.user_id == user_id).order_by(cp.c.id.desc()))).all()
    follow_ups = await sequence_steps.of_campaigns(session, [row.id for row in rows])
    scopes = await account_scopes(session, [row.account_id for row in rows])
    return [structs.campaign(row, follow_ups.get(row.id, []), scopes.get(row.account_id)) for row in rows]


def _require(row: Record, allowed: frozenset[CampaignState], action: str) -> None:
    if row.state not in allowed:
        raise Conflict(f"campaign {row.id} is {row.state} and cannot be {action}")


async def launch(
    session: AsyncSession,
    user_id: int,
    campaign_id: int,
    options: schemas.Launch,
    *,
    domain: str,
    now: datetime,
) -> schemas.Campaign:
    """Schedule every valid row; refused while rows have problems unless ``skip_invalid``."""
    row = await owned(session, user_id, campaign_id, lock=True)
    _require(row, CAMPAIGN_LAUNCHABLE, "launched")
    await sending_account(session, user_id, row.account_id)
    built = await summary(session, campaign_id)
    if built.valid == 0:
        raise Invalid("the campaign has no valid recipient; upload a list first")
    invalid = built.rows - built.valid
    if invalid and not options.skip_invalid:
        raise Conflict(
            f"{invalid} rows have problems (see the report); fix and upload the list again, "
            "or launch with skip_invalid: true to leave them out"
        )
    await _refuse_deleted_attachments(session, row)
    await session.execute(
        _LAUNCH,
        {
            "campaign_id": campaign_id,
            "user_id": user_id,
            "account_id": row.account_id,
            "send_at": max(row.start_at or now, now),
            "domain": domain,
            "attachment_ids": list(row.attachment_ids),
            "correlation_id": current_correlation_id(),
            "now": now,
        },
    )
    launched = await _set_state(session, campaign_id, CampaignState.RUNNING, launched_at=now)
    await stage_event(
        session,
        user_id,
        "campaign.launched",
        {"campaign_id": campaign_id, "name": row.name, "recipients": built.valid},
        now,
    )
    return launched


async def _refuse_deleted_attachments(session: AsyncSession, row: Record) -> None:
    used = select(func.unnest(r.c.attachment_ids)).where(r.c.campaign_id == row.id, r.c.problem.is_(None))
    deleted = (
        await session.execute(
            select(attachments.c.attachment_id).where(
                attachments.c.deleted_at.is_not(None),
                attachments.c.attachment_id.in_(used)
                | attachments.c.attachment_id.in_(list(row.attachment_ids)),
            )
        )
    ).scalars()
    names = sorted(deleted)
    if names:
        raise Conflict(
            f"attachments {', '.join(map(str, names))} were deleted; upload them again and rebuild"
        )


async def _set_state(
    session: AsyncSession, campaign_id: int, state: CampaignState, **values: object
) -> schemas.Campaign:
    row = (
        await session.execute(
            update(cp).where(cp.c.id == campaign_id).values(state=state.value, **values).returning(cp)
        )
    ).one()
    if state is CampaignState.RUNNING:
        await announce_due(session)
    return await described(session, row)


async def pause(session: AsyncSession, user_id: int, campaign_id: int, *, now: datetime) -> schemas.Campaign:
    row = await owned(session, user_id, campaign_id, lock=True)
    _require(row, CAMPAIGN_PAUSABLE, "paused")
    paused = await _set_state(session, campaign_id, CampaignState.PAUSED)
    await stage_event(session, user_id, "campaign.paused", {"campaign_id": campaign_id, "by": "user"}, now)
    return paused


async def resume(session: AsyncSession, user_id: int, campaign_id: int) -> schemas.Campaign:
    """Run again; a campaign that paused itself after failures starts counting them afresh."""
    row = await owned(session, user_id, campaign_id, lock=True)
    _require(row, CAMPAIGN_RESUMABLE, "resumed")
    return await _set_state(
        session, campaign_id, CampaignState.RUNNING, consecutive_failures=0, paused_reason=None
    )


async def cancel(session: AsyncSession, user_id: int, campaign_id: int, *, now: datetime) -> schemas.Campaign:
    """Cancel the campaign and every message of it not dispatched yet."""
    row = await owned(session, user_id, campaign_id, lock=True)
    _require(row, CAMPAIGN_CANCELLABLE, "cancelled")
    await ledger.move(
        session,
        m.c.campaign_id == campaign_id,
        sources=[State.SCHEDULED],
        target=State.CANCELLED,
        reason="campaign cancelled",
        now=now,
    )
    return await _set_state(session, campaign_id, CampaignState.CANCELLED, finished_at=now)


async def retry_failed(
    session: AsyncSession, user_id: int, campaign_id: int, *, now: datetime
) -> schemas.Retried:
    """Send the failed messages again, as a new generation each (not those whose attachment was
    deleted): the sender makes a new attempt, it does not repeat the failure."""
    row = await owned(session, user_id, campaign_id, lock=True)
    if row.state in (CampaignState.DRAFT, CampaignState.CANCELLED):
        raise Conflict(
            f"campaign {campaign_id} is {row.state}; only a launched campaign has failures to retry"
        )
    uses_deleted = exists().where(
        attachments.c.deleted_at.is_not(None), attachments.c.attachment_id == any_(m.c.attachment_ids)
    )
    retryable: ColumnElement[bool] = (m.c.campaign_id == campaign_id) & ~uses_deleted
    moved = await lifecycle.send_again(session, retryable, now=now, sources=frozenset({State.FAILED}))
    return schemas.Retried(retried=len(moved))


_RESOLVED_NOTE = {
    Resolution.RESEND_ANYWAY: (
        "sent again: Gmail may already have delivered the earlier attempts, so these recipients may "
        "get the email twice"
    ),
    Resolution.MARK_AS_SENT: "recorded as sent without Gmail's confirmation; nothing more is sent",
}


async def resolve_unconfirmed(
    session: AsyncSession, user_id: int, campaign_id: int, resolution: Resolution, *, now: datetime
) -> schemas.Resolved:
    """Settle every unconfirmed message of the campaign as the user chose."""
    row = await owned(session, user_id, campaign_id, lock=True)
    if row.state == CampaignState.CANCELLED and resolution is Resolution.RESEND_ANYWAY:
        raise Conflict(f"campaign {campaign_id} is cancelled; its messages are not sent again")
    mine: ColumnElement[bool] = m.c.campaign_id == campaign_id
    if resolution is Resolution.RESEND_ANYWAY:
        done = await lifecycle.send_again(session, mine, now=now, sources=frozenset({State.UNCONFIRMED}))
    else:
        done = await lifecycle.mark_sent(session, mine, now=now)
    return schemas.Resolved(resolution=resolution, resolved=len(done), note=_RESOLVED_NOTE[resolution])


async def replace_steps(
    session: AsyncSession,
    user_id: int,
    campaign_id: int,
    data: schemas.ReplaceSteps,
    *,
    templates: TemplatesClient,
) -> schemas.Campaign:
    """Replace the follow-ups not started yet (a draft's, a running or paused campaign's)."""
    row = await owned(session, user_id, campaign_id, lock=True)
    if row.state in (CampaignState.COMPLETED, CampaignState.CANCELLED):
        raise Conflict(f"campaign {campaign_id} is {row.state}; its steps can no longer change")
    follow_ups = await sequence_steps.replace(session, templates, user_id, campaign_id, data.steps)
    scopes = (await account_scopes(session, [row.account_id])).get(row.account_id)
    return structs.campaign(row, follow_ups, scopes)


async def stop_row(
    session: AsyncSession,
    user_id: int,
    campaign_id: int,
    row_number: int,
    data: schemas.StopRow,
    *,
    now: datetime,
) -> schemas.RowStopped:
    """The user marks a row replied or stopped: it gets no later step (``sequences.stops``)."""
    await owned(session, user_id, campaign_id)
    reason, stopped_at, cancelled = await stops.stop_row(
        session, campaign_id, row_number, StopReason(data.reason), now
    )
    return schemas.RowStopped(row=row_number, stop_reason=reason, stopped_at=stopped_at, cancelled=cancelled)
