"""A campaign's follow-ups (``campaign_steps``): checked, stored, read, and edited while it runs.

Editing replaces the follow-ups not started yet: a step some recipient's message was already built
for stays as it is (its messages hold their rendered content, so no edit could change them anyway;
keeping the step keeps the rest of its recipients on the same email).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue import schemas
from mailmerger_queue.adapters.templates import TemplatesClient
from mailmerger_queue.errors import Conflict, Invalid
from mailmerger_queue.models import Record, campaign_steps, messages

st, m = campaign_steps, messages
FIRST_FOLLOW_UP = 2


async def check_templates(
    templates: TemplatesClient, user_id: int, steps: Sequence[schemas.FollowUpStepIn]
) -> None:
    """Invalid naming the step whose template version does not exist."""
    for index, step in enumerate(steps):
        if await templates.version(user_id, step.template_id, step.template_version) is None:
            raise Invalid(
                f"steps[{index}]: template {step.template_id} has no version {step.template_version}",
                extra={"field": f"steps[{index}]"},
            )


def _numbered(steps: Sequence[schemas.FollowUpStepIn]) -> list[schemas.FollowUpStep]:
    return [
        schemas.FollowUpStep(
            step=number,
            template_id=step.template_id,
            template_version=step.template_version,
            delay_hours=step.delay_hours,
            business_days=step.business_days,
            same_thread=step.same_thread,
        )
        for number, step in enumerate(steps, start=FIRST_FOLLOW_UP)
    ]


async def store(session: AsyncSession, campaign_id: int, steps: Iterable[schemas.FollowUpStep]) -> None:
    values = [{"campaign_id": campaign_id, **_values(step)} for step in steps]
    if values:
        await session.execute(insert(st), values)


def _values(step: schemas.FollowUpStep) -> dict[str, object]:
    return {
        "step": step.step,
        "template_id": step.template_id,
        "template_version": step.template_version,
        "delay_hours": step.delay_hours,
        "business_days": step.business_days,
        "same_thread": step.same_thread,
    }


async def create(
    session: AsyncSession, campaign_id: int, steps: Sequence[schemas.FollowUpStepIn]
) -> list[schemas.FollowUpStep]:
    """Store a new campaign's follow-ups (their templates checked: ``check_templates``)."""
    numbered = _numbered(steps)
    await store(session, campaign_id, numbered)
    return numbered


def follow_up(row: Record) -> schemas.FollowUpStep:
    """A row of ``campaign_steps``."""
    return schemas.FollowUpStep(
        step=row.step,
        template_id=row.template_id,
        template_version=row.template_version,
        delay_hours=row.delay_hours,
        business_days=row.business_days,
        same_thread=row.same_thread,
    )


async def of_campaigns(
    session: AsyncSession, campaign_ids: list[int]
) -> dict[int, list[schemas.FollowUpStep]]:
    """The follow-ups of each of ``campaign_ids``, in step order (absent: none)."""
    found: dict[int, list[schemas.FollowUpStep]] = {}
    if not campaign_ids:
        return found
    rows = await session.execute(select(st).where(st.c.campaign_id.in_(campaign_ids)).order_by(st.c.step))
    for row in rows:
        found.setdefault(row.campaign_id, []).append(follow_up(row))
    return found


async def of_campaign(session: AsyncSession, campaign_id: int) -> list[schemas.FollowUpStep]:
    return (await of_campaigns(session, [campaign_id])).get(campaign_id, [])


async def replace(
    session: AsyncSession,
    templates: TemplatesClient,
    user_id: int,
    campaign_id: int,
    steps: Sequence[schemas.FollowUpStepIn],
) -> list[schemas.FollowUpStep]:
    """Replace the campaign's (locked) follow-ups; 409 when a started step would change or go."""
    current = await of_campaign(session, campaign_id)
    wanted = _numbered(steps)
    started = set(
        (
            await session.execute(
                select(m.c.step).distinct().where(m.c.campaign_id == campaign_id, m.c.step >= FIRST_FOLLOW_UP)
            )
        ).scalars()
    )
    given = {step.step: step for step in wanted}
    for step in current:
        if step.step in started and given.get(step.step) != step:
            raise Conflict(
                f"step {step.step} has started (emails of it were built); give it unchanged, "
                "edit only the steps after it",
                extra={"field": f"steps[{step.step - FIRST_FOLLOW_UP}]"},
            )
    await check_templates(templates, user_id, [step for step in wanted if step.step not in started])
    await session.execute(delete(st).where(st.c.campaign_id == campaign_id, st.c.step.not_in(started)))
    await store(session, campaign_id, [step for step in wanted if step.step not in started])
    return wanted
