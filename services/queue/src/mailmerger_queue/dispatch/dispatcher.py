"""The dispatcher: claims due messages, paces them per account and campaign, publishes SendEmail.

One tick is one transaction:

1. lock the unparked Google accounts that have due work on a connected row (``pacers``, ``FOR
   UPDATE SKIP LOCKED``): a replica that cannot lock one leaves it to the replica that did, so
   pacing decisions for one Google account are never made twice at once, however many
   MailMerger users connected it;
2. work out each Google account's allowance (its even pace, rolling 24 h) and each running
   campaign's allowance (window, daily cap, spacing);
3. take up to the allowance from each *stream* — an account's direct emails, and each of its
   campaigns — oldest ``send_at`` first, interleave the streams of an account, then interleave
   the accounts (everyone's first message before anyone's second), up to ``batch_size``. So one
   user's 100k campaign delays neither another user's email nor the same user's direct email
   by more than one tick;
4. lock those messages (``FOR UPDATE SKIP LOCKED``, still ``scheduled`` and due): a cancel that
   got there first wins, a cancel that comes later waits for this tick and finds ``dispatched``;
5. publish one ``SendEmail`` per message and wait for the broker's confirms;
6. only then mark the confirmed ones ``dispatched`` (attempt + 1), record the attempts, move each
   Google account's pacing clock on by what it dispatched, commit.

If the process dies between 5 and 6, the transaction rolls back: the messages are still
``scheduled`` with the same attempt number and Message-ID, and the next tick publishes them
again. That re-publish is harmless: the sender claims every message in its idempotency ledger before
calling Gmail and reconciles an uncertain one by its Message-ID, which never changes, so a
duplicate command never becomes a duplicate email. A message is never published before its ``send_at``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import and_, delete, exists, func, not_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailmerger_queue import ledger, structs
from mailmerger_queue.compliance import suppression
from mailmerger_queue.compliance.rails import DomainRail
from mailmerger_queue.compliance.tokens import UnsubscribeTokens
from mailmerger_queue.dispatch import lifecycle, pacers
from mailmerger_queue.dispatch.commands import publish_commands, sendable
from mailmerger_queue.dispatch.fairness import Candidate, Stream, fair_pick
from mailmerger_queue.dispatch.pacing import Pace, Schedule, account_allowance
from mailmerger_queue.dispatch.redispatch import redispatch_stale
from mailmerger_queue.domain import PENDING, SUPPRESSED, CampaignState, State
from mailmerger_queue.models import (
    Record,
    attempts,
    campaigns,
    messages,
    processed_events,
    senders,
)
from mailmerger_queue.sequences import stops
from mailmerger_queue.sequences.builder import NO_STEP_OWED
from mailmerger_queue.settings import DispatchSettings
from mailmerger_queue.webhooks.events import stage_event
from mailmerger_shared import metrics
from mailmerger_shared.broker.publisher import Publisher
from mailmerger_shared.db import transaction

log = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)
T = TypeVar("T")

m, s, cp = messages, senders, campaigns


class Clock(Protocol):
    def now(self) -> datetime: ...


class Pause(Protocol):
    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when new work falls due (``wakeup.DueListener``)."""


class Sleep:
    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _grouped(decided: dict[int, T]) -> dict[T, list[int]]:
    """Message ids by what was decided for them (one statement per distinct decision)."""
    groups: dict[T, list[int]] = {}
    for message_id, decision in decided.items():
        groups.setdefault(decision, []).append(message_id)
    return groups


class FollowUps(Protocol):
    """The follow-up builder (``sequences.builder``), run by housekeeping."""

    async def build_due(self, now: datetime) -> int: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


_CANDIDATES = text(
    """
    SELECT c.id, c.account_id, c.campaign_id, c.send_at
    FROM unnest(CAST(:accounts AS bigint[]), CAST(:account_limits AS int[])) AS a(account_id, lim)
    CROSS JOIN LATERAL (
        SELECT id, account_id, campaign_id, send_at FROM queue.messages
        WHERE state = 'scheduled' AND campaign_id IS NULL AND account_id = a.account_id
          AND send_at <= :now
        ORDER BY send_at, id LIMIT a.lim
    ) AS c
    UNION ALL
    SELECT c.id, c.account_id, c.campaign_id, c.send_at
    FROM unnest(CAST(:campaigns AS bigint[]), CAST(:campaign_limits AS int[])) AS k(campaign_id, lim)
    CROSS JOIN LATERAL (
        SELECT id, account_id, campaign_id, send_at FROM queue.messages
        WHERE state = 'scheduled' AND campaign_id = k.campaign_id AND send_at <= :now
        ORDER BY send_at, id LIMIT k.lim
    ) AS c
    """
)


# One statement for a tick's attempts (an executemany ran one INSERT per message).
_RECORD_ATTEMPTS = text(
    "INSERT INTO queue.attempts (message_id, attempt, account_id, campaign_id, dispatched_at) "
    "SELECT a.message_id, a.attempt, a.account_id, a.campaign_id, CAST(:now AS timestamptz) "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS int[]), CAST(:accounts AS bigint[]), "
    "CAST(:campaigns AS bigint[])) AS a(message_id, attempt, account_id, campaign_id)"
)


# Backlog for the metrics: the partial index on scheduled messages keeps this cheap.
_SCHEDULED_COUNTS = text(
    "SELECT count(*) FILTER (WHERE send_at <= :now), count(*) FILTER (WHERE send_at > :now) "
    "FROM queue.messages WHERE state = 'scheduled'"
)


@dataclass
class Dispatcher:
    sessions: async_sessionmaker[AsyncSession]
    publisher: Publisher
    settings: DispatchSettings
    clock: Clock
    rng: random.Random
    unsubscribe: UnsubscribeTokens
    between_ticks: Pause = field(default_factory=Sleep)
    # Builds the next step of each recipient whose previous step was sent (None: no sequences).
    follow_ups: FollowUps | None = None

    async def dispatch_due_messages(self) -> int:
        """One tick; returns how many messages were published and marked dispatched."""
        now = self.clock.now()
        async with transaction(self.sessions) as session:
            locked = await pacers.lock_pacers(session, now)
            paces = {pacer_id: self._pace(pacer.per_minute) for pacer_id, pacer in locked.pacers.items()}
            allowance = {
                pacer_id: account_allowance(
                    pace=paces[pacer_id],
                    paced_until=pacer.paced_until,
                    daily=pacer.daily,
                    sent_last_day=pacer.sent_last_day,
                    now=now,
                )
                for pacer_id, pacer in locked.pacers.items()
            }
            allowance = {pacer_id: n for pacer_id, n in allowance.items() if n > 0}
            if not allowance:
                return 0
            # What each connected row of a Google account may take: all of its account's allowance
            # (fair_pick then keeps the rows of one Google account within it together).
            per_account = {
                account_id: allowance[pacer_id]
                for account_id, pacer_id in locked.pacer_of.items()
                if pacer_id in allowance
            }
            schedules = await self._campaign_allowances(session, per_account, now)
            candidates = await self._candidates(session, per_account, schedules, now)
            last_served = await self._last_served(session, list(per_account), now)
            chosen = fair_pick(
                candidates, allowance, self.settings.batch_size, last_served, pacer_of=locked.pacer_of
            )
            claimed = await self._claim(session, [candidate.id for candidate in chosen], now)
            rail = await self._domain_rail(session, claimed, schedules)
            claimed = await self._hold_back(session, claimed, rail, now)
            confirmed = await self._publish(session, claimed, locked.accounts)
            metrics.observe_dispatched(now, {x.id: x.send_at for x in chosen}, [row.id for row in confirmed])
            await self._mark_dispatched(session, confirmed, now)
            await rail.count(session, confirmed, now)
            await self._advance_paces(session, confirmed, locked, paces, now)
            await self._space_campaigns(session, confirmed, schedules, now)
            return len(confirmed)

    def _pace(self, per_minute: int) -> Pace:
        tick = timedelta(seconds=self.settings.tick_seconds)
        # An account set above the quota before it was lowered is paced at the quota.
        per_minute = min(per_minute, self.settings.per_minute_limit)
        return Pace.of(per_minute, pace_fraction=self.settings.pace_fraction, tick=tick)

    async def _campaign_allowances(
        self, session: AsyncSession, allowance: dict[int, int], now: datetime
    ) -> dict[int, tuple[Schedule, int]]:
        """Running campaigns of the locked accounts that may send now: schedule and allowance."""
        rows = (
            await session.execute(
                select(cp).where(cp.c.account_id.in_(list(allowance)), cp.c.state == CampaignState.RUNNING)
            )
        ).all()
        schedules = {row.id: structs.schedule(row) for row in rows}
        capped = [row.id for row in rows if row.daily_cap is not None]
        sent_today: dict[int, int] = {}
        if capped:
            day_starts = [schedules[campaign_id].local_day_start(now) for campaign_id in capped]
            counted = await session.execute(
                text(
                    "SELECT a.campaign_id, count(*) FROM queue.attempts a JOIN "
                    "unnest(CAST(:ids AS bigint[]), CAST(:since AS timestamptz[])) AS d(campaign_id, since) "
                    "ON a.campaign_id = d.campaign_id AND a.dispatched_at >= d.since "
                    "WHERE a.outcome IS DISTINCT FROM 'deferred' AND a.outcome IS DISTINCT FROM 'failed' "
                    "GROUP BY a.campaign_id"
                ),
                {"ids": capped, "since": day_starts},
            )
            sent_today = {campaign_id: int(count) for campaign_id, count in counted}
        result: dict[int, tuple[Schedule, int]] = {}
        for row in rows:
            schedule = schedules[row.id]
            n = schedule.allowance(
                now,
                next_send_at=row.next_send_at,
                sent_today=sent_today.get(row.id, 0),
                per_tick=allowance[row.account_id],
            )
            if n > 0:
                result[row.id] = (schedule, n)
        return result

    async def _candidates(
        self,
        session: AsyncSession,
        allowance: dict[int, int],
        schedules: dict[int, tuple[Schedule, int]],
        now: datetime,
    ) -> list[Candidate]:
        rows = await session.execute(
            _CANDIDATES,
            {
                "accounts": list(allowance),
                "account_limits": list(allowance.values()),
                "campaigns": list(schedules),
                "campaign_limits": [n for _, n in schedules.values()],
                "now": now,
            },
        )
        return [Candidate(*row) for row in rows]

    async def _last_served(
        self, session: AsyncSession, account_ids: list[int], now: datetime
    ) -> dict[Stream, datetime]:
        """When each stream of these accounts last had a message dispatched (within the minute)."""
        rows = await session.execute(
            select(attempts.c.account_id, attempts.c.campaign_id, func.max(attempts.c.dispatched_at))
            .where(attempts.c.account_id.in_(account_ids), attempts.c.dispatched_at > now - MINUTE)
            .group_by(attempts.c.account_id, attempts.c.campaign_id)
        )
        return {(account_id, campaign_id): at for account_id, campaign_id, at in rows}

    async def _claim(self, session: AsyncSession, ids: list[int], now: datetime) -> list[Record]:
        if not ids:
            return []
        due = m.c.id.in_(ids) & (m.c.state == State.SCHEDULED) & (m.c.send_at <= now)
        return list(await session.execute(sendable(due)))

    async def _domain_rail(
        self, session: AsyncSession, claimed: list[Record], schedules: dict[int, tuple[Schedule, int]]
    ) -> DomainRail:
        """The domain caps of the claimed messages' campaigns (``compliance.rails``)."""
        campaign_ids = {row.campaign_id for row in claimed if row.campaign_id is not None}
        caps: dict[int, int] = {}
        if campaign_ids:
            rows = await session.execute(
                select(cp.c.id, cp.c.domain_daily_cap).where(
                    cp.c.id.in_(campaign_ids), cp.c.domain_daily_cap.is_not(None)
                )
            )
            caps = {campaign_id: cap for campaign_id, cap in rows}  # noqa: C416 (rows are not pairs to dict())
        return DomainRail(caps, {campaign_id: schedule for campaign_id, (schedule, _) in schedules.items()})

    async def _hold_back(
        self, session: AsyncSession, claimed: list[Record], rail: DomainRail, now: datetime
    ) -> list[Record]:
        """The claimed messages that may go now. A campaign message to a suppressed address or
        domain is cancelled, saying why; one over its campaign's domain cap for today waits for
        the next local day. Both are decided here, inside the tick's transaction, so an
        unsubscribe or a suppression committed before this tick stops the message. A suppressed
        recipient's sequence stops for good, and a message of a recipient whose sequence stopped
        is cancelled with the stop's reason (``sequences.stops``)."""
        suppressed = await suppression.screen(session, claimed)
        for why, ids in _grouped(suppressed).items():
            await ledger.move(
                session,
                m.c.id.in_(ids),
                sources=[State.SCHEDULED],
                target=State.CANCELLED,
                reason=why,
                now=now,
                values={"outcome_reason": SUPPRESSED, "outcome_detail": why},
            )
        await stops.stop_suppressed(session, claimed, suppressed, now)
        stopped = {
            row.id: row.stop_reason
            for row in claimed
            if row.stop_reason is not None and row.id not in suppressed
        }
        for reason, ids in _grouped(stopped).items():
            await ledger.move(
                session,
                m.c.id.in_(ids),
                sources=[State.SCHEDULED],
                target=State.CANCELLED,
                reason=f"the recipient's sequence stopped ({reason})",
                now=now,
                values={"outcome_reason": reason},
            )
        suppressed = {**suppressed, **stopped}
        waiting = await rail.over_cap(session, [row for row in claimed if row.id not in suppressed], now)
        for until, ids in _grouped(waiting).items():
            await session.execute(update(m).where(m.c.id.in_(ids)).values(send_at=until, updated_at=now))
        if suppressed or waiting:
            log.info(
                "held back at dispatch",
                extra={
                    "suppressed": len(suppressed) - len(stopped),
                    "stopped": len(stopped),
                    "over_domain_cap": len(waiting),
                },
            )
        return [row for row in claimed if row.id not in suppressed and row.id not in waiting]

    async def _publish(
        self, session: AsyncSession, claimed: list[Record], accounts: dict[int, Record]
    ) -> list[Record]:
        """Publish a command per claimed message; returns those the broker confirmed (the others
        stay scheduled and go again next tick; the sender ignores any duplicate)."""
        return await publish_commands(
            session,
            self.publisher,
            claimed,
            accounts,
            attempt=lambda row: row.attempt + 1,
            unsubscribe=self.unsubscribe,
        )

    async def _mark_dispatched(self, session: AsyncSession, confirmed: list[Record], now: datetime) -> None:
        if not confirmed:
            return
        await ledger.move(
            session,
            m.c.id.in_([row.id for row in confirmed]),
            sources=[State.SCHEDULED],
            target=State.DISPATCHED,
            reason="dispatched to the sender",
            now=now,
            values={"attempt": m.c.attempt + 1},
        )
        await session.execute(
            _RECORD_ATTEMPTS,
            {
                "ids": [row.id for row in confirmed],
                "attempts": [row.attempt + 1 for row in confirmed],
                "accounts": [row.account_id for row in confirmed],
                "campaigns": [row.campaign_id for row in confirmed],
                "now": now,
            },
        )

    async def _advance_paces(
        self,
        session: AsyncSession,
        confirmed: list[Record],
        locked: pacers.Locked,
        paces: dict[int, Pace],
        now: datetime,
    ) -> None:
        dispatched = Counter(locked.pacer_of[row.account_id] for row in confirmed)
        await pacers.advance(
            session,
            {
                locked.pacers[pacer_id].google_key: paces[pacer_id].advance(
                    locked.pacers[pacer_id].paced_until, now, n
                )
                for pacer_id, n in dispatched.items()
            },
        )

    async def _space_campaigns(
        self,
        session: AsyncSession,
        confirmed: list[Record],
        schedules: dict[int, tuple[Schedule, int]],
        now: datetime,
    ) -> None:
        for campaign_id in {row.campaign_id for row in confirmed if row.campaign_id is not None}:
            next_at = schedules[campaign_id][0].next_send_at(now, self.rng)
            if next_at is not None:
                await session.execute(update(cp).where(cp.c.id == campaign_id).values(next_send_at=next_at))

    async def housekeeping(self) -> None:
        """Build the follow-ups owed (``sequences.builder``); complete campaigns with no pending
        message and no follow-up still to build; forget old processed-event ids; publish again the
        commands of messages whose outcome never came back; give every stuck message its next step
        (``lifecycle.sweep``)."""
        now = self.clock.now()
        if self.follow_ups is not None:
            try:
                await self.follow_ups.build_due(now)
            except Exception:  # templates unreachable: the rest of housekeeping still runs
                log.exception("building follow-ups failed; retrying at the next housekeeping")
        async with transaction(self.sessions) as session:
            await lifecycle.sweep(
                session, now=now, no_outcome_after=timedelta(seconds=self.settings.no_outcome_after_seconds)
            )
        async with transaction(self.sessions) as session:
            await redispatch_stale(
                session,
                self.publisher,
                now=now,
                stale_after=timedelta(seconds=self.settings.redispatch_after_seconds),
                limit=self.settings.batch_size,
                unsubscribe=self.unsubscribe,
            )
        async with transaction(self.sessions) as session:
            pending = exists().where(m.c.campaign_id == cp.c.id, m.c.state.in_([p.value for p in PENDING]))
            completed = await session.execute(
                update(cp)
                .where(cp.c.state == CampaignState.RUNNING, not_(pending), text(NO_STEP_OWED))
                .values(state=CampaignState.COMPLETED.value, finished_at=now)
                .returning(cp.c.id, cp.c.user_id, cp.c.name)
            )
            for campaign_id, user_id, name in completed:
                await stage_event(
                    session, user_id, "campaign.completed", {"campaign_id": campaign_id, "name": name}, now
                )
            cutoff = now - timedelta(hours=self.settings.processed_events_retention_hours)
            await session.execute(delete(processed_events).where(processed_events.c.processed_at < cutoff))
            metrics.set_scheduled(*(await session.execute(_SCHEDULED_COUNTS, {"now": now})).one())
            metrics.PARKED_ACCOUNTS.set(
                await session.scalar(select(func.count()).where(s.c.parked_until > now)) or 0
            )

    async def pause(self) -> float:
        """Seconds to wait before the next tick: until the next send_at, at most one tick."""
        now = self.clock.now()
        async with transaction(self.sessions) as session:
            next_due = (
                await session.execute(
                    select(func.min(m.c.send_at)).where(and_(m.c.state == State.SCHEDULED, m.c.send_at > now))
                )
            ).scalar_one_or_none()
        tick = self.settings.tick_seconds
        if next_due is None:
            return tick
        wait: float = (next_due - now).total_seconds()
        return max(0.0, min(tick, wait))

    async def run(self) -> None:
        """Tick until cancelled; a failed tick is logged and retried, never fatal."""
        ticks = 0
        while True:
            try:
                dispatched = await self.dispatch_due_messages()
                metrics.DISPATCH_TICKS.labels("ok").inc()
                if ticks % 20 == 0:
                    await self.housekeeping()
                wait = 0.0 if dispatched >= self.settings.batch_size else await self.pause()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch tick failed; retrying")
                metrics.DISPATCH_TICKS.labels("failed").inc()
                wait = self.settings.tick_seconds * 4
            ticks += 1
            await self.between_ticks.wait(wait)
