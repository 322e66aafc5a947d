"""The Google accounts the dispatcher paces in one tick, locked, with their usage and limits.

Gmail's quotas and sending caps belong to the Google user, not to a MailMerger connection: the
same Gmail account connected by two users (two ``senders`` rows with one ``google_key``) is paced
once. A Google account's pacing state is the one of its *pacing row*, the oldest row with its key,
which is what a dispatcher locks (``FOR UPDATE SKIP LOCKED``), so two replicas never pace one Google
account at once. Its clock and its parking are written to every row of the key; its daily usage
counts the dispatches of every row; its limits are the lowest any connected row has.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mailmerger_queue.dispatch.senders import sent_last_day
from mailmerger_queue.domain import CampaignState, SenderState, State
from mailmerger_queue.models import Record, campaigns, messages, senders

m, s, cp = messages, senders, campaigns


@dataclass(frozen=True)
class Pacer:
    """One Google account for this tick: its pacing row's id and state, its limits and usage."""

    pacer_id: int
    google_key: str
    paced_until: datetime | None
    per_minute: int
    daily: int
    sent_last_day: int


@dataclass(frozen=True)
class Locked:
    """The Google accounts locked for the tick, and their connected rows (the senders of messages)."""

    pacers: dict[int, Pacer]
    accounts: dict[int, Record]  # connected rows by account id: what a SendEmail names as sender
    pacer_of: dict[int, int]  # account id -> its Google account's pacing row id


async def lock_pacers(session: AsyncSession, now: datetime) -> Locked:
    """Lock the unparked Google accounts with due work on a connected row (skipping those another
    dispatcher holds)."""
    peer = s.alias("peer")
    direct_due = exists().where(
        m.c.account_id == peer.c.account_id,
        m.c.campaign_id.is_(None),
        m.c.state == State.SCHEDULED,
        m.c.send_at <= now,
    )
    campaign_due = exists().where(
        cp.c.account_id == peer.c.account_id,
        cp.c.state == CampaignState.RUNNING,
        exists().where(m.c.campaign_id == cp.c.id, m.c.state == State.SCHEDULED, m.c.send_at <= now),
    )
    has_due_work = exists().where(
        peer.c.google_key == s.c.google_key,
        peer.c.state == SenderState.CONNECTED,
        or_(direct_due, campaign_due),
    )
    oldest = select(func.min(peer.c.account_id)).where(peer.c.google_key == s.c.google_key).scalar_subquery()
    locked = (
        select(s.c.account_id, s.c.google_key, s.c.paced_until)
        .where(
            s.c.account_id == oldest,
            or_(s.c.parked_until.is_(None), s.c.parked_until <= now),
            has_due_work,
        )
        .with_for_update(of=s, skip_locked=True)
        .cte("locked")
    )
    # The locked pacing rows and every row of their Google accounts, in one statement.
    member = s.alias("member")
    members = (
        await session.execute(
            select(
                member.c.account_id,
                member.c.google_key,
                member.c.state,
                member.c.email,
                member.c.display_name,
                member.c.daily_limit,
                member.c.per_minute_limit,
                locked.c.account_id.label("pacer_id"),
                locked.c.paced_until.label("pacer_paced_until"),
            ).join_from(member, locked, member.c.google_key == locked.c.google_key)
        )
    ).all()
    if not members:
        return Locked(pacers={}, accounts={}, pacer_of={})
    sent = await sent_last_day(session, [each.account_id for each in members], now)
    usage: dict[str, int] = defaultdict(int)
    for each in members:
        usage[each.google_key] += sent.get(each.account_id, 0)
    connected = [each for each in members if each.state == SenderState.CONNECTED]
    pacers = {
        rows[0].pacer_id: Pacer(
            pacer_id=rows[0].pacer_id,
            google_key=key,
            paced_until=rows[0].pacer_paced_until,
            per_minute=min(each.per_minute_limit for each in rows),
            daily=min(each.daily_limit for each in rows),
            sent_last_day=usage[key],
        )
        for key, rows in _by_key(connected).items()
    }
    return Locked(
        pacers=pacers,
        accounts={each.account_id: each for each in connected},
        pacer_of={each.account_id: each.pacer_id for each in connected},
    )


def _by_key(rows: Iterable[Record]) -> dict[str, list[Record]]:
    grouped: dict[str, list[Record]] = defaultdict(list)
    for each in rows:
        grouped[each.google_key].append(each)
    return grouped


# Every row of a Google account moves its clock together: whichever is its pacing row later on
# (the oldest one may be deleted) starts from the same time.
_ADVANCE = text(
    "UPDATE queue.senders s SET paced_until = p.paced_until FROM "
    "unnest(CAST(:keys AS text[]), CAST(:paced_until AS timestamptz[])) AS p(google_key, paced_until) "
    "WHERE s.google_key = p.google_key"
)


async def advance(session: AsyncSession, clocks: dict[str, datetime]) -> None:
    """Set the pacing clock of each Google account (by key) on all of its rows."""
    if clocks:
        await session.execute(_ADVANCE, {"keys": list(clocks), "paced_until": list(clocks.values())})
